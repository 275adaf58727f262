/* trend.c - least-squares linear fit and days-left (trend.h). Times are centred on their mean
 * before summing so epoch milliseconds do not lose precision. */
#include "trend.h"

int bl__linfit(const double *t, const double *v, int n, double *slope, double *intercept)
{
    if (n < 2) return -1;
    double mt = 0, mv = 0;
    for (int i = 0; i < n; i++)
        mt += t[i], mv += v[i];
    mt /= n, mv /= n;
    double sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        double dt = t[i] - mt;
        sxx += dt * dt;
        sxy += dt * (v[i] - mv);
    }
    if (sxx <= 0) return -1;
    *slope = sxy / sxx;
    *intercept = mv - *slope * mt;
    return 0;
}

double bl__days_left(double used, double per_day)
{
    if (per_day <= 1e-9) return -1;
    double left = (100.0 - used) / per_day;
    return left < 0 ? 0 : left;
}
