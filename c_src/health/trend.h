/* trend.h - least-squares linear fit (trend.c), for "days left" recommendations. */
#ifndef BL_HEALTH_TREND_H
#define BL_HEALTH_TREND_H

/* Fit v = a + b t over n points. 0 with *slope = b, or -1 when n < 2 or all t are equal. */
int bl__linfit(const double *t, const double *v, int n, double *slope, double *intercept);

/* Days until a percentage growing per_day (percent per day) from used reaches 100; -1 when it
 * does not grow. */
double bl__days_left(double used, double per_day);

#endif
