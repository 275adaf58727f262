/* test_gateway_routes.c - the gateway's route table (c_src/gateway/api.c) and its OpenAPI
 * document (c_src/gateway/assets/openapi.json, embedded in the library) describe the same API:
 * every route is a documented operation with the same least role, every documented operation is
 * a route, and every error status a route can answer with is documented for it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/gw_int.h"

static json_t *doc(void)
{
    size_t len;
    const char *ct;
    const unsigned char *d = bl__gw_asset("openapi.json", &len, &ct);
    assert_non_null(d);
    json_error_t je;
    json_t *j = json_loadb((const char *)d, len, 0, &je);
    assert_non_null(j);
    return j;
}

static void lower(const char *in, char *out)
{
    size_t i = 0;
    for (; in[i]; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
    out[i] = 0;
}

static void every_route_is_documented(void **state)
{
    (void)state;
    json_t *d = doc(), *paths = json_object_get(d, "paths");
    assert_non_null(paths);
    for (unsigned i = 0; i < bl__gw_nroutes; i++) {
        const gw_route *r = &bl__gw_routes[i];
        char m[16];
        lower(r->method, m);
        json_t *op = json_object_get(json_object_get(paths, r->pattern), m);
        if (!op) fail_msg("%s %s is not in openapi.json", r->method, r->pattern);
        const char *role = json_string_value(json_object_get(op, "x-beamlet-role"));
        assert_non_null(role);
        const char *want = r->role < 0 ? "none" : bl__gw_role_name(r->role);
        if (strcmp(role, want))
            fail_msg("%s %s: role %s documented, %s in the table", r->method, r->pattern, role,
                     want);
        json_t *resp = json_object_get(op, "responses");
        /* what the dispatcher itself may answer */
        if (r->role >= 0 && !json_object_get(resp, "401"))
            fail_msg("%s %s: 401 not documented", r->method, r->pattern);
        if (r->role > 0 && !json_object_get(resp, "403"))
            fail_msg("%s %s: 403 not documented", r->method, r->pattern);
        if (!json_object_get(resp, "429"))
            if (r->role >= 0) fail_msg("%s %s: 429 not documented", r->method, r->pattern);
        if (r->write && !(op = json_object_get(op, "security")))
            fail_msg("%s %s: a write without security", r->method, r->pattern);
    }
    json_decref(d);
}

static void every_operation_is_a_route(void **state)
{
    (void)state;
    json_t *d = doc(), *paths = json_object_get(d, "paths"), *ops;
    const char *path;
    int n = 0;
    json_object_foreach(paths, path, ops)
    {
        const char *m;
        json_t *op;
        json_object_foreach(ops, m, op)
        {
            int found = 0;
            for (unsigned i = 0; i < bl__gw_nroutes; i++) {
                char lm[16];
                lower(bl__gw_routes[i].method, lm);
                if (!strcmp(lm, m) && !strcmp(bl__gw_routes[i].pattern, path)) found = 1;
            }
            if (!found) fail_msg("openapi.json documents %s %s: no such route", m, path);
            n++;
        }
    }
    assert_int_equal(n, (int)bl__gw_nroutes);
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_route_is_documented),
        cmocka_unit_test(every_operation_is_a_route),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
