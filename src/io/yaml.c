/* Bounded YAML subset parser (see yaml.h). Works line by line: comments are
 * stripped first (quote-aware), then block mappings are built by indentation
 * with a recursive descent whose depth is capped. */
#include "io/yaml.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

typedef struct {
    int lineno; /* 1-based physical line */
    int indent; /* leading spaces */
    char *s;    /* content: no indentation, no comment, no trailing blanks */
} yline;

typedef struct {
    yline *lines;
    size_t n, i;
    sam_yaml_doc *doc;
    sam_yaml_params p;
    size_t nodes;
} yparser;

sam_yaml_params sam_yaml_default_params(void) {
    sam_yaml_params p = {.max_bytes = 1u << 20, .max_depth = 32, .max_nodes = 100000};
    return p;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

static sam2d_status new_node(yparser *P, sam_yaml_kind kind, int line, sam_yaml_node **out) {
    if (++P->nodes > P->p.max_nodes)
        return SAM_ERR(SAM2D_ERR_LIMIT, "yaml line %d: more than %zu nodes", line, P->p.max_nodes);
    sam_yaml_node *n = sam_arena_alloc(&P->doc->arena, sizeof *n);
    if (!n) return SAM_ERR(SAM2D_ERR_NOMEM, "yaml: out of memory");
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->line = line;
    n->text = "";
    *out = n;
    return SAM2D_OK;
}

static char *dup_range(yparser *P, const char *s, size_t len) {
    char *d = sam_arena_alloc(&P->doc->arena, len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = 0;
    return d;
}

static void append_child(sam_yaml_node *parent, sam_yaml_node *child) {
    sam_yaml_node **pp = &parent->first;
    while (*pp) pp = &(*pp)->next;
    *pp = child;
    parent->count++;
}

/* Strip a trailing comment, honouring quotes that open a scalar; trim the
 * right end. Fails on a quote left open (multi-line scalars are refused). */
static sam2d_status strip_comment(char *s, int lineno) {
    char quote = 0;
    char prev_sig = 0; /* last non-blank character outside quotes */
    size_t i = 0;
    for (; s[i]; i++) {
        char c = s[i];
        if (quote == '"') {
            if (c == '\\' && s[i + 1]) i++;
            else if (c == '"') quote = 0, prev_sig = c;
            continue;
        }
        if (quote == '\'') {
            if (c == '\'' && s[i + 1] == '\'') i++;
            else if (c == '\'') quote = 0, prev_sig = c;
            continue;
        }
        if (c == '#' && (i == 0 || is_blank(s[i - 1]))) break;
        /* a quote opens a scalar only where a token starts */
        if ((c == '"' || c == '\'') && (i == 0 || prev_sig == ':' || prev_sig == '[' || prev_sig == ',' ||
                                        prev_sig == '-' || prev_sig == '{') &&
            (i == 0 || is_blank(s[i - 1]) || s[i - 1] == '[' || s[i - 1] == ',')) {
            quote = c;
            continue;
        }
        if (!is_blank(c)) prev_sig = c;
    }
    if (quote) return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: unterminated quoted scalar (multi-line scalars are not supported)", lineno);
    while (i > 0 && is_blank(s[i - 1])) i--;
    s[i] = 0;
    return SAM2D_OK;
}

/* Parse a quoted scalar starting at *pp (on the quote); *pp moves past it. */
static sam2d_status parse_quoted(yparser *P, const char **pp, int lineno, char **out) {
    const char *p = *pp;
    char q = *p++;
    size_t cap = strlen(p) + 1;
    char *d = sam_arena_alloc(&P->doc->arena, cap);
    if (!d) return SAM_ERR(SAM2D_ERR_NOMEM, "yaml: out of memory");
    size_t k = 0;
    for (;;) {
        char c = *p;
        if (!c) return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: unterminated quoted scalar", lineno);
        if (q == '\'') {
            if (c == '\'') {
                if (p[1] == '\'') {
                    d[k++] = '\'';
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            d[k++] = c;
            p++;
            continue;
        }
        if (c == '"') {
            p++;
            break;
        }
        if (c == '\\') {
            char e = p[1];
            char r;
            switch (e) {
            case '\\': r = '\\'; break;
            case '"': r = '"'; break;
            case '/': r = '/'; break;
            case 'n': r = '\n'; break;
            case 't': r = '\t'; break;
            case 'r': r = '\r'; break;
            default:
                return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: unsupported escape '\\%c' in a double-quoted scalar",
                               lineno, e ? e : ' ');
            }
            d[k++] = r;
            p += 2;
            continue;
        }
        d[k++] = c;
        p++;
    }
    d[k] = 0;
    *pp = p;
    *out = d;
    return SAM2D_OK;
}

static sam2d_status refuse_token(char c, int lineno) {
    switch (c) {
    case '{': return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: flow mappings ({...}) are not supported", lineno);
    case '|':
    case '>': return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: block scalars (| or >) are not supported", lineno);
    case '&':
    case '*':
    case '!': return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: anchors, aliases and tags (&, *, !) are not supported", lineno);
    case '@':
    case '`': return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: '%c' cannot start a plain scalar", lineno, c);
    case '?': return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: complex keys (?) are not supported", lineno);
    case '%': return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: directives (%%) are not supported", lineno);
    default: return SAM2D_OK;
    }
}

static sam2d_status parse_flow_seq(yparser *P, const char **pp, int lineno, int depth, sam_yaml_node **out) {
    if (depth > P->p.max_depth)
        return SAM_ERR(SAM2D_ERR_LIMIT, "yaml line %d: nesting deeper than %d", lineno, P->p.max_depth);
    const char *p = *pp + 1; /* past '[' */
    sam_yaml_node *seq = NULL;
    SAM_TRY(new_node(P, SAM_YAML_SEQ, lineno, &seq));
    for (;;) {
        while (is_blank(*p)) p++;
        if (*p == ']') {
            p++;
            break;
        }
        if (!*p) return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: flow sequence not closed on its line", lineno);
        if (*p == ',') return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: empty item in a flow sequence", lineno);
        sam_yaml_node *item = NULL;
        if (*p == '[') {
            SAM_TRY(parse_flow_seq(P, &p, lineno, depth + 1, &item));
        } else if (*p == '"' || *p == '\'') {
            char *s;
            SAM_TRY(parse_quoted(P, &p, lineno, &s));
            SAM_TRY(new_node(P, SAM_YAML_SCALAR, lineno, &item));
            item->text = s;
            item->quoted = true;
        } else {
            SAM_TRY(refuse_token(*p, lineno));
            const char *b = p;
            while (*p && *p != ',' && *p != ']') {
                if (*p == '[' || *p == '{' || *p == '}')
                    return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: unexpected '%c' in a flow sequence", lineno, *p);
                if (*p == ':' && (is_blank(p[1]) || p[1] == ',' || p[1] == ']' || !p[1]))
                    return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: mappings inside flow sequences are not supported",
                                   lineno);
                p++;
            }
            const char *e = p;
            while (e > b && is_blank(e[-1])) e--;
            SAM_TRY(new_node(P, SAM_YAML_SCALAR, lineno, &item));
            if (!(item->text = dup_range(P, b, (size_t)(e - b)))) return SAM_ERR(SAM2D_ERR_NOMEM, "yaml: out of memory");
        }
        append_child(seq, item);
        while (is_blank(*p)) p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == ']') {
            p++;
            break;
        }
        return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: expected ',' or ']' in a flow sequence", lineno);
    }
    *pp = p;
    *out = seq;
    return SAM2D_OK;
}

/* The value after "key:" on the same line (non-empty). */
static sam2d_status parse_inline_value(yparser *P, const char *v, int lineno, int depth, sam_yaml_node **out) {
    if (*v == '[') {
        SAM_TRY(parse_flow_seq(P, &v, lineno, depth, out));
    } else if (*v == '"' || *v == '\'') {
        char *s;
        SAM_TRY(parse_quoted(P, &v, lineno, &s));
        SAM_TRY(new_node(P, SAM_YAML_SCALAR, lineno, out));
        (*out)->text = s;
        (*out)->quoted = true;
    } else {
        SAM_TRY(refuse_token(*v, lineno));
        if (*v == '-' && (is_blank(v[1]) || !v[1]))
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: block sequences (- item) are not supported", lineno);
        for (const char *p = v; *p; p++)
            if (*p == ':' && (is_blank(p[1]) || !p[1]))
                return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: a mapping value is not allowed here (\"%s\")", lineno, v);
        SAM_TRY(new_node(P, SAM_YAML_SCALAR, lineno, out));
        if (!((*out)->text = dup_range(P, v, strlen(v)))) return SAM_ERR(SAM2D_ERR_NOMEM, "yaml: out of memory");
        return SAM2D_OK;
    }
    while (is_blank(*v)) v++;
    if (*v) return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: unexpected text after the value: \"%s\"", lineno, v);
    return SAM2D_OK;
}

static sam2d_status parse_block_map(yparser *P, int indent, int depth, sam_yaml_node *map) {
    if (depth > P->p.max_depth)
        return SAM_ERR(SAM2D_ERR_LIMIT, "yaml line %d: nesting deeper than %d", P->lines[P->i].lineno, P->p.max_depth);
    while (P->i < P->n) {
        yline *L = &P->lines[P->i];
        if (L->indent < indent) return SAM2D_OK;
        if (L->indent > indent) return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: unexpected indentation", L->lineno);
        const char *s = L->s;
        if (s[0] == '-' && (s[1] == ' ' || s[1] == '\t' || !s[1])) {
            if (s[1] && s[2] == '-' && s[1] == '-')
                return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: document markers are not supported", L->lineno);
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: block sequences (- item) are not supported", L->lineno);
        }
        if (!strncmp(s, "---", 3) || !strncmp(s, "...", 3))
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: document markers (several documents) are not supported",
                           L->lineno);
        if (*s == '[') return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: a flow sequence cannot be a key", L->lineno);
        SAM_TRY(refuse_token(*s, L->lineno));
        /* key */
        const char *key;
        const char *p = s;
        if (*p == '"' || *p == '\'') {
            char *k;
            SAM_TRY(parse_quoted(P, &p, L->lineno, &k));
            key = k;
            while (is_blank(*p)) p++;
            if (*p != ':' || !(is_blank(p[1]) || !p[1]))
                return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: expected ':' after the quoted key", L->lineno);
        } else {
            while (*p && !(*p == ':' && (is_blank(p[1]) || !p[1]))) p++;
            if (!*p) return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: expected \"key: value\", got \"%s\"", L->lineno, s);
            const char *e = p;
            while (e > s && is_blank(e[-1])) e--;
            if (e == s) return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: empty key", L->lineno);
            char *k = dup_range(P, s, (size_t)(e - s));
            if (!k) return SAM_ERR(SAM2D_ERR_NOMEM, "yaml: out of memory");
            key = k;
        }
        p++; /* past ':' */
        while (is_blank(*p)) p++;
        for (const sam_yaml_node *c = map->first; c; c = c->next)
            if (!strcmp(c->key, key))
                return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: duplicate key \"%s\" (first on line %d)", L->lineno, key,
                               c->line);
        int lineno = L->lineno;
        P->i++;
        sam_yaml_node *val = NULL;
        if (*p) {
            SAM_TRY(parse_inline_value(P, p, lineno, depth + 1, &val));
        } else if (P->i < P->n && P->lines[P->i].indent > indent) {
            SAM_TRY(new_node(P, SAM_YAML_MAP, lineno, &val));
            SAM_TRY(parse_block_map(P, P->lines[P->i].indent, depth + 1, val));
        } else if (P->i < P->n && P->lines[P->i].indent == indent && P->lines[P->i].s[0] == '-' &&
                   (is_blank(P->lines[P->i].s[1]) || !P->lines[P->i].s[1])) {
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: block sequences (- item) are not supported",
                           P->lines[P->i].lineno);
        } else {
            SAM_TRY(new_node(P, SAM_YAML_SCALAR, lineno, &val)); /* empty value = null */
        }
        val->key = key;
        append_child(map, val);
    }
    return SAM2D_OK;
}

sam2d_status sam_yaml_parse(const char *text, size_t len, const sam_yaml_params *params, sam_yaml_doc *doc) {
    if (!doc || (!text && len)) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "yaml: NULL argument");
    memset(doc, 0, sizeof *doc);
    yparser P = {0};
    P.p = params ? *params : sam_yaml_default_params();
    sam_yaml_params d = sam_yaml_default_params();
    if (!P.p.max_bytes) P.p.max_bytes = d.max_bytes;
    if (P.p.max_depth <= 0) P.p.max_depth = d.max_depth;
    if (!P.p.max_nodes) P.p.max_nodes = d.max_nodes;
    if (len > P.p.max_bytes) return SAM_ERR(SAM2D_ERR_LIMIT, "yaml: text of %zu bytes exceeds the limit of %zu", len, P.p.max_bytes);
    if (len && memchr(text, 0, len)) return SAM_ERR(SAM2D_ERR_FORMAT, "yaml: NUL byte in the text (binary file?)");
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) text += 3, len -= 3; /* UTF-8 BOM */

    char *buf = sam_malloc(len + 1);
    size_t nlines_max = 1;
    for (size_t i = 0; i < len; i++) nlines_max += text[i] == '\n';
    yline *lines = sam_malloc(nlines_max * sizeof *lines);
    sam2d_status st = SAM2D_OK;
    if (!buf || !lines) {
        st = SAM_ERR(SAM2D_ERR_NOMEM, "yaml: out of memory");
        goto done;
    }
    if (len) memcpy(buf, text, len);
    buf[len] = 0;
    sam_arena_init(&doc->arena);
    /* one chunk sized to the text: a config needs far less than the default 1 MiB */
    if (!sam_arena_reserve(&doc->arena, len < 16384 ? 65536 : (len < (1u << 18) ? 4 * len : ((size_t)1 << 20)))) {
        st = SAM_ERR(SAM2D_ERR_NOMEM, "yaml: out of memory");
        goto done;
    }
    P.doc = doc;
    P.lines = lines;
    int lineno = 0;
    for (char *s = buf; s && *s;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = 0;
        lineno++;
        size_t L = strlen(s);
        if (L && s[L - 1] == '\r') s[--L] = 0;
        int ind = 0;
        while (s[ind] == ' ') ind++;
        char *c = s + ind;
        if (*c == '\t') {
            /* a tab before any content: only acceptable on a blank line */
            char *q = c;
            while (is_blank(*q)) q++;
            if (*q && *q != '#') {
                st = SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: tab in indentation", lineno);
                goto done;
            }
        }
        if ((st = strip_comment(c, lineno)) != SAM2D_OK) goto done;
        while (is_blank(*c)) c++;
        if (*c) {
            lines[P.n].lineno = lineno;
            lines[P.n].indent = ind;
            lines[P.n].s = c;
            P.n++;
        }
        s = nl ? nl + 1 : NULL;
    }
    if ((st = new_node(&P, SAM_YAML_MAP, 1, &doc->root)) != SAM2D_OK) goto done;
    if (P.n) {
        doc->root->line = P.lines[0].lineno;
        if ((st = parse_block_map(&P, P.lines[0].indent, 1, doc->root)) != SAM2D_OK) goto done;
        if (P.i < P.n) st = SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: indentation less than the first key's", P.lines[P.i].lineno);
    }
done:
    sam_free(buf);
    sam_free(lines);
    if (st != SAM2D_OK) {
        sam_arena_free(&doc->arena);
        memset(doc, 0, sizeof *doc);
    }
    return st;
}

void sam_yaml_free(sam_yaml_doc *doc) {
    if (!doc) return;
    if (doc->root) sam_arena_free(&doc->arena);
    memset(doc, 0, sizeof *doc);
}

const sam_yaml_node *sam_yaml_get(const sam_yaml_node *map, const char *key) {
    if (!map || map->kind != SAM_YAML_MAP || !key) return NULL;
    for (const sam_yaml_node *c = map->first; c; c = c->next)
        if (!strcmp(c->key, key)) return c;
    return NULL;
}

const sam_yaml_node *sam_yaml_child(const sam_yaml_node *node, size_t i) {
    if (!node || node->kind == SAM_YAML_SCALAR) return NULL;
    const sam_yaml_node *c = node->first;
    while (c && i--) c = c->next;
    return c;
}

bool sam_yaml_is_null(const sam_yaml_node *n) {
    if (!n) return true;
    if (n->kind != SAM_YAML_SCALAR || n->quoted) return false;
    const char *t = n->text;
    return !*t || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") || !strcmp(t, "NULL");
}

static const char *name_of(const sam_yaml_node *n) { return n->key ? n->key : "(item)"; }

static sam2d_status want_scalar(const sam_yaml_node *n, const char *what) {
    if (!n) return SAM_ERR(SAM2D_ERR_FORMAT, "yaml: missing %s value", what);
    if (n->kind != SAM_YAML_SCALAR)
        return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: %s: expected a %s, got a %s", n->line, name_of(n), what,
                       n->kind == SAM_YAML_MAP ? "mapping" : "sequence");
    if (n->quoted)
        return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: %s: expected a %s, got the string \"%s\"", n->line, name_of(n),
                       what, n->text);
    return SAM2D_OK;
}

sam2d_status sam_yaml_as_bool(const sam_yaml_node *n, bool *out) {
    SAM_TRY(want_scalar(n, "boolean"));
    const char *t = n->text;
    if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE")) {
        *out = true;
        return SAM2D_OK;
    }
    if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE")) {
        *out = false;
        return SAM2D_OK;
    }
    return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: %s: expected true or false, got \"%s\"", n->line, name_of(n), t);
}

sam2d_status sam_yaml_as_int(const sam_yaml_node *n, int64_t *out) {
    SAM_TRY(want_scalar(n, "integer"));
    const char *t = n->text;
    const char *p = t;
    if (*p == '+' || *p == '-') p++;
    bool ok = *p != 0;
    for (const char *q = p; *q; q++) ok &= *q >= '0' && *q <= '9';
    if (ok) {
        errno = 0;
        char *end;
        long long v = strtoll(t, &end, 10);
        if (errno == 0 && *end == 0) {
            *out = v;
            return SAM2D_OK;
        }
    }
    return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: %s: expected an integer, got \"%s\"", n->line, name_of(n), t);
}

sam2d_status sam_yaml_as_double(const sam_yaml_node *n, double *out) {
    SAM_TRY(want_scalar(n, "number"));
    const char *t = n->text;
    /* [+-] digits [. digits] [e [+-] digits], at least one digit in the mantissa;
     * checked by hand so strtod's hex, inf and nan spellings stay refused. */
    const char *p = t;
    int digits = 0;
    if (*p == '+' || *p == '-') p++;
    while (*p >= '0' && *p <= '9') p++, digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') p++, digits++;
    }
    bool ok = digits > 0;
    if (ok && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-') p++;
        int ed = 0;
        while (*p >= '0' && *p <= '9') p++, ed++;
        ok = ed > 0;
    }
    if (ok && *p == 0) {
        char *end;
        errno = 0;
        double v = strtod(t, &end);
        if (*end == 0 && errno != ERANGE) {
            *out = v;
            return SAM2D_OK;
        }
    }
    return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: %s: expected a number, got \"%s\"", n->line, name_of(n), t);
}

sam2d_status sam_yaml_as_int_list(const sam_yaml_node *n, int64_t *out, int cap, int *count) {
    if (!n) return SAM_ERR(SAM2D_ERR_FORMAT, "yaml: missing list value");
    if (n->kind != SAM_YAML_SEQ)
        return SAM_ERR(SAM2D_ERR_FORMAT, "yaml line %d: %s: expected a list like [1, 2], got %s%s%s", n->line,
                       name_of(n), n->kind == SAM_YAML_MAP ? "a mapping" : "\"", n->kind == SAM_YAML_MAP ? "" : n->text,
                       n->kind == SAM_YAML_MAP ? "" : "\"");
    if (n->count > (size_t)cap)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "yaml line %d: %s: %zu items, at most %d supported", n->line, name_of(n),
                       n->count, cap);
    int k = 0;
    for (const sam_yaml_node *c = n->first; c; c = c->next) {
        sam2d_status st = sam_yaml_as_int(c, &out[k]);
        if (st != SAM2D_OK) return sam_error_wrap(st, "%s", name_of(n));
        k++;
    }
    *count = k;
    return SAM2D_OK;
}
