/* version.c - what `beamlet version` prints: the release, the git revision and the build date.
 *
 * The Makefile passes BL_GIT_REV and BL_BUILD_DATE for this file only (SOURCE_DATE_EPOCH, when
 * set, fixes the date so package builds are reproducible); a build without them says "unknown". */
#include "cli.h"

#include "beamlet/beamlet.h"

#ifndef BL_GIT_REV
#define BL_GIT_REV "unknown"
#endif
#ifndef BL_BUILD_DATE
#define BL_BUILD_DATE "unknown"
#endif

const char *bl__cli_git_rev(void)
{
    return BL_GIT_REV;
}

const char *bl__cli_build_date(void)
{
    return BL_BUILD_DATE;
}

int bl__cli_version(int argc, char **argv)
{
    if (argc > 0 && argv[0] && !strcmp(argv[0], "--short")) {
        printf("%s\n", BL_VERSION);
        return 0;
    }
    printf("beamlet %s (git %s, built %s)\n", BL_VERSION, BL_GIT_REV, BL_BUILD_DATE);
    return 0;
}
