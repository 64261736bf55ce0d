/*
 * HTTP-date (RFC 9110 §5.6.7): parsing the three forms a recipient must
 * take, and formatting the one a sender uses.  Pure logic, any thread.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/cdn.h"
#include "http/http_date.h"

/* RFC 5234 WSP (SP / HTAB): what OWS is made of. */
static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static const char wk_short[7][4] = {
    "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const wk_long[7] = {"Sunday", "Monday", "Tuesday",
    "Wednesday", "Thursday", "Friday", "Saturday"};
static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *yp, unsigned *mp, unsigned *dp)
{
	int64_t era, doe, yoe, doy, mp5, y;
	unsigned m;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp5 = (5 * doy + 2) / 153;
	*dp = (unsigned)(doy - (153 * mp5 + 2) / 5 + 1);
	m = (unsigned)(mp5 < 10 ? mp5 + 3 : mp5 - 9);
	*mp = m;
	*yp = y + (m <= 2);
}

static int
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* n digits at s, or -1. */
static int
digits(const char *s, size_t n)
{
	size_t i;
	int v;

	v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int
month_of(const char *s)
{
	int i;

	for (i = 0; i < 12; i++)
		if (memcmp(s, months + 3 * i, 3) == 0)
			return i + 1;
	return -1;
}

static int
is_wk_short(const char *s)
{
	int i;

	for (i = 0; i < 7; i++)
		if (memcmp(s, wk_short[i], 3) == 0)
			return 1;
	return 0;
}

/* "HH:MM:SS" at s into seconds of the day, or -1. */
static int
time_of_day(const char *s)
{
	int h, m, sec;

	if (s[2] != ':' || s[5] != ':')
		return -1;
	h = digits(s, 2);
	m = digits(s + 3, 2);
	sec = digits(s + 6, 2);
	/* 60: a leap second (RFC 5322 §3.3 allows it) */
	if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60)
		return -1;
	return h * 3600 + m * 60 + sec;
}

static int64_t
make_time(int64_t y, int mon, int day, int tod)
{
	static const unsigned char mdays[12] = {
	    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int dim;

	if (y < 1970 || y > 9999 || mon < 1 || mon > 12 || day < 1 || tod < 0)
		return -1;
	dim = mdays[mon - 1] + (mon == 2 && is_leap(y));
	if (day > dim)
		return -1;
	return days_from_civil(y, (unsigned)mon, (unsigned)day) * 86400 + tod;
}

/*
 * RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is
 * the most recent past year with those digits.
 */
static int64_t
rfc850_year(int yy)
{
	int64_t now_y, y;
	unsigned m, d;

	civil_from_days((int64_t)time(NULL) / 86400, &now_y, &m, &d);
	y = now_y - now_y % 100 + yy;
	if (y + 100 <= now_y + 50)
		y += 100;
	if (y > now_y + 50)
		y -= 100;
	return y;
}

int64_t
http_date_parse(const char *s, size_t len)
{
	size_t i, n;
	int day, mon, year, tod;

	CDN_ASSERT(s != NULL || len == 0);
	n = 0;
	while (len > 0 && is_wsp(s[len - 1]))
		len--;
	while (len > 0 && is_wsp(*s)) {
		s++;
		len--;
	}
	if (len == 29 && s[3] == ',') {
		/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
		if (!is_wk_short(s) || s[4] != ' ' || s[7] != ' ' ||
		    s[11] != ' ' || s[16] != ' ' || s[25] != ' ' ||
		    memcmp(s + 26, "GMT", 3) != 0)
			return -1;
		day = digits(s + 5, 2);
		mon = month_of(s + 8);
		year = digits(s + 12, 4);
		tod = time_of_day(s + 17);
		if (day < 0 || year < 0)
			return -1;
		return make_time(year, mon, day, tod);
	}
	if (len == 24 && s[3] == ' ') {
		/* asctime-date: "Sun Nov  6 08:49:37 1994" */
		if (!is_wk_short(s) || s[7] != ' ' || s[10] != ' ' ||
		    s[19] != ' ')
			return -1;
		mon = month_of(s + 4);
		day = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
		tod = time_of_day(s + 11);
		year = digits(s + 20, 4);
		if (day < 0 || year < 0)
			return -1;
		return make_time(year, mon, day, tod);
	}
	/* rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT" */
	for (i = 0; i < 7; i++) {
		n = strlen(wk_long[i]);
		if (len == n + 24 && memcmp(s, wk_long[i], n) == 0)
			break;
	}
	if (i == 7)
		return -1;
	s += n;
	if (s[0] != ',' || s[1] != ' ' || s[4] != '-' || s[8] != '-' ||
	    s[11] != ' ' || s[20] != ' ' || memcmp(s + 21, "GMT", 3) != 0)
		return -1;
	day = digits(s + 2, 2);
	mon = month_of(s + 5);
	year = digits(s + 9, 2);
	tod = time_of_day(s + 12);
	if (day < 0 || year < 0)
		return -1;
	return make_time(rfc850_year(year), mon, day, tod);
}

static void
put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

/* Times outside what an HTTP-date expresses are clamped to 1970..9999. */
void
http_date_format(int64_t t, char *buf, size_t len)
{
	int64_t days, y;
	unsigned secs, m, d, wd;

	CDN_ASSERT(buf != NULL && len >= 30);
	if (t < 0)
		t = 0;
	if (t > HTTP_DATE_MAX)
		t = HTTP_DATE_MAX;
	days = t / 86400;
	secs = (unsigned)(t % 86400);
	civil_from_days(days, &y, &m, &d);
	wd = (unsigned)((days + 4) % 7); /* 1970-01-01 was a Thursday */
	memcpy(buf, wk_short[wd], 3);
	memcpy(buf + 3, ", ", 2);
	put2(buf + 5, d);
	buf[7] = ' ';
	memcpy(buf + 8, months + 3 * (m - 1), 3);
	buf[11] = ' ';
	put2(buf + 12, (unsigned)(y / 100));
	put2(buf + 14, (unsigned)(y % 100));
	buf[16] = ' ';
	put2(buf + 17, secs / 3600);
	buf[19] = ':';
	put2(buf + 20, secs / 60 % 60);
	buf[22] = ':';
	put2(buf + 23, secs % 60);
	memcpy(buf + 25, " GMT", 5); /* with the NUL */
}
