/*
 * The config-file lexer (conf/conf_int.h): one line into tokens, with the
 * column of each, so that every error can point at file:line:col.  The
 * grammar is small on purpose: blank-separated words, "quoted values" with
 * only \" and \\ as escapes, '#' comments, and braces standing alone.
 * Control characters are refused everywhere.  No state.
 */
#include "config.h"

#include <stddef.h>

#include "conf/conf_int.h"

int
conf_lex_line(const char *line, size_t len, char *buf, struct conf_tok *toks,
    unsigned *ntok, unsigned *ecol, const char **why)
{
	size_t i = 0, o = 0, start, tokstart;
	unsigned n = 0;
	char ch;

	for (;;) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len || line[i] == '#')
			break;
		start = i;
		tokstart = o;
		if (line[i] == '"') {
			for (i++;; i++) {
				if (i == len) {
					*ecol = (unsigned)start + 1;
					*why = "unterminated quoted value";
					goto fail;
				}
				ch = line[i];
				if (ch == '"')
					break;
				if (ch == '\\') {
					if (i + 1 < len &&
					    (line[i + 1] == '"' ||
					        line[i + 1] == '\\')) {
						buf[o++] = line[++i];
						continue;
					}
					*ecol = (unsigned)i + 1;
					*why = "invalid escape (only \\\" and "
					       "\\\\ are allowed)";
					goto fail;
				}
				if (conf_is_ctl((unsigned char)ch)) {
					*ecol = (unsigned)i + 1;
					*why = "control character in a quoted "
					       "value";
					goto fail;
				}
				buf[o++] = ch;
			}
			i++; /* the closing quote */
			if (i < len && line[i] != ' ' && line[i] != '\t' &&
			    line[i] != '#') {
				*ecol = (unsigned)i + 1;
				*why = "unexpected text after a closing quote";
				goto fail;
			}
		} else {
			for (; i < len && line[i] != ' ' && line[i] != '\t' &&
			     line[i] != '#';
			     i++) {
				ch = line[i];
				if ((ch == '{' || ch == '}') && i == start &&
				    (i + 1 == len || line[i + 1] == ' ' ||
				        line[i + 1] == '\t' ||
				        line[i + 1] == '#')) {
					buf[o++] = ch; /* a brace on its own */
					i++;
					break;
				}
				if (ch == '{' || ch == '}') {
					*ecol = (unsigned)i + 1;
					*why = "a brace must stand alone "
					       "(put blanks around it)";
					goto fail;
				}
				if (ch == '"') {
					*ecol = (unsigned)i + 1;
					*why =
					    "unexpected quote inside a value "
					    "(quote the whole value)";
					goto fail;
				}
				if (conf_is_ctl((unsigned char)ch)) {
					*ecol = (unsigned)i + 1;
					*why = "control character";
					goto fail;
				}
				buf[o++] = ch;
			}
		}
		buf[o++] = '\0';
		if (n < CONF_LEX_TOKS) {
			toks[n].s = buf + tokstart;
			toks[n].col = (unsigned)start + 1;
			toks[n].endcol = (unsigned)i + 1;
		}
		n++;
	}
	*ntok = n;
	return CDN_OK;
fail:
	*ntok = n;
	return CDN_EINVAL;
}
