/* The bounded YAML subset: what it accepts (Meta's config layout), and that
 * everything else is refused with the offending line number. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "io/yaml.h"
#include "sam2d/config.h"
#include "sam2d/sam2d.h"
#include "test_util.h"

static sam2d_status parse(const char *text, sam_yaml_doc *doc) {
    return sam_yaml_parse(text, strlen(text), NULL, doc);
}

/* Parsing must fail with `want` and a message naming "line <line>". */
static void expect_refused(const char *text, sam2d_status want, int line) {
    sam_yaml_doc doc;
    sam2d_status st = parse(text, &doc);
    char needle[32];
    snprintf(needle, sizeof needle, "line %d", line);
    CHECK_MSG(st == want, "status %s (want %s) for:\n%s\nmessage: %s", sam2d_status_str(st), sam2d_status_str(want), text,
              sam2d_last_error());
    CHECK_MSG(strstr(sam2d_last_error(), needle) != NULL, "message \"%s\" lacks \"%s\"", sam2d_last_error(), needle);
    CHECK(doc.root == NULL);
    if (st == SAM2D_OK) sam_yaml_free(&doc);
}

static void test_accepts(void) {
    const char *text =
        "# @package _global_\n"
        "\n"
        "model:\n"
        "  _target_: sam2.modeling.sam2_base.SAM2Base   # trailing comment\n"
        "  trunk:\n"
        "      embed_dim: 96\n"
        "      stages: [1, 2, 7, 2]\n"
        "      nested: [[1, 2], [], [ 3 ]]\n"
        "      empty:\n"
        "  \t\n"
        "  scale: null\n"
        "  tilde: ~\n"
        "  eps: 1e-6\n"
        "  neg: -10.0\n"
        "  half: .5\n"
        "  yes1: True\n"
        "  no1: false\n"
        "  s1: 'it''s # not a comment'\n"
        "  s2: \"a\\tb \\\"q\\\"\"\n"
        "  s3: don't\n"
        "  url: http://x/y#frag\n"
        "  'quoted key': 3\r\n"
        "top2: 5\n";
    sam_yaml_doc doc;
    sam2d_status st = parse(text, &doc);
    CHECK_MSG(st == SAM2D_OK, "%s", sam2d_last_error());
    if (st != SAM2D_OK) return;
    CHECK(doc.root->kind == SAM_YAML_MAP && doc.root->count == 2);
    const sam_yaml_node *m = sam_yaml_get(doc.root, "model");
    CHECK(m && m->kind == SAM_YAML_MAP && m->line == 3);
    const sam_yaml_node *t = sam_yaml_get(m, "_target_");
    CHECK(t && !strcmp(t->text, "sam2.modeling.sam2_base.SAM2Base"));
    const sam_yaml_node *trunk = sam_yaml_get(m, "trunk");
    int64_t v = 0;
    CHECK(sam_yaml_as_int(sam_yaml_get(trunk, "embed_dim"), &v) == SAM2D_OK && v == 96);
    int64_t list[8];
    int n = 0;
    CHECK(sam_yaml_as_int_list(sam_yaml_get(trunk, "stages"), list, 8, &n) == SAM2D_OK && n == 4 && list[0] == 1 &&
          list[2] == 7 && list[3] == 2);
    CHECK(sam_yaml_as_int_list(sam_yaml_get(trunk, "stages"), list, 3, &n) == SAM2D_ERR_UNSUPPORTED);
    const sam_yaml_node *nested = sam_yaml_get(trunk, "nested");
    CHECK(nested && nested->kind == SAM_YAML_SEQ && nested->count == 3);
    CHECK(sam_yaml_child(nested, 0)->count == 2 && sam_yaml_child(nested, 1)->count == 0 &&
          !strcmp(sam_yaml_child(sam_yaml_child(nested, 2), 0)->text, "3"));
    CHECK(sam_yaml_is_null(sam_yaml_get(trunk, "empty")));
    CHECK(sam_yaml_is_null(sam_yaml_get(m, "scale")));
    CHECK(sam_yaml_is_null(sam_yaml_get(m, "tilde")));
    CHECK(sam_yaml_is_null(sam_yaml_get(m, "absent")));
    CHECK(!sam_yaml_is_null(sam_yaml_get(m, "eps")));
    double d = 0;
    CHECK(sam_yaml_as_double(sam_yaml_get(m, "eps"), &d) == SAM2D_OK && d == 1e-6);
    CHECK(sam_yaml_as_double(sam_yaml_get(m, "neg"), &d) == SAM2D_OK && d == -10.0);
    CHECK(sam_yaml_as_double(sam_yaml_get(m, "half"), &d) == SAM2D_OK && d == 0.5);
    CHECK(sam_yaml_as_double(sam_yaml_get(trunk, "embed_dim"), &d) == SAM2D_OK && d == 96.0);
    bool b = false;
    CHECK(sam_yaml_as_bool(sam_yaml_get(m, "yes1"), &b) == SAM2D_OK && b);
    CHECK(sam_yaml_as_bool(sam_yaml_get(m, "no1"), &b) == SAM2D_OK && !b);
    CHECK(!strcmp(sam_yaml_get(m, "s1")->text, "it's # not a comment") && sam_yaml_get(m, "s1")->quoted);
    CHECK(!strcmp(sam_yaml_get(m, "s2")->text, "a\tb \"q\""));
    CHECK(!strcmp(sam_yaml_get(m, "s3")->text, "don't"));
    CHECK(!strcmp(sam_yaml_get(m, "url")->text, "http://x/y#frag"));
    CHECK(sam_yaml_as_int(sam_yaml_get(m, "quoted key"), &v) == SAM2D_OK && v == 3);
    CHECK(sam_yaml_as_int(sam_yaml_get(doc.root, "top2"), &v) == SAM2D_OK && v == 5);
    /* typed views refuse other spellings, naming line and key */
    CHECK(sam_yaml_as_int(sam_yaml_get(m, "eps"), &v) == SAM2D_ERR_FORMAT && strstr(sam2d_last_error(), "line 13"));
    CHECK(sam_yaml_as_bool(sam_yaml_get(m, "neg"), &b) == SAM2D_ERR_FORMAT && strstr(sam2d_last_error(), "neg"));
    CHECK(sam_yaml_as_double(sam_yaml_get(m, "s1"), &d) == SAM2D_ERR_FORMAT);
    CHECK(sam_yaml_as_int(trunk, &v) == SAM2D_ERR_FORMAT);
    sam_yaml_free(&doc);
    CHECK(doc.root == NULL);

    /* number spellings strtod would take but YAML would not */
    const char *bad_numbers = "a: 0x10\nb: inf\nc: nan\nd: 1e\ne: .\nf: 1_000\n";
    CHECK(parse(bad_numbers, &doc) == SAM2D_OK);
    for (const sam_yaml_node *c = doc.root->first; c; c = c->next)
        CHECK_MSG(sam_yaml_as_double(c, &d) == SAM2D_ERR_FORMAT, "%s accepted as a number", c->text);
    sam_yaml_free(&doc);

    /* empty text, only comments */
    CHECK(parse("", &doc) == SAM2D_OK && doc.root->count == 0);
    sam_yaml_free(&doc);
    CHECK(parse("# nothing\n\n   # here\n", &doc) == SAM2D_OK && doc.root->count == 0);
    sam_yaml_free(&doc);
}

static void test_refuses(void) {
    expect_refused("a: 1\nb:\n  - x\n", SAM2D_ERR_UNSUPPORTED, 3);          /* block sequence */
    expect_refused("a: 1\nb:\n- x\n", SAM2D_ERR_UNSUPPORTED, 3);            /* block sequence, same indent */
    expect_refused("a: 1\n  b: 2\n", SAM2D_ERR_FORMAT, 2);                  /* unexpected indentation */
    expect_refused("a:\n    b: 1\n  c: 2\n", SAM2D_ERR_FORMAT, 3);          /* dedent to an unknown level */
    expect_refused("a: 1\nb: {x: 1}\n", SAM2D_ERR_UNSUPPORTED, 2);          /* flow mapping */
    expect_refused("a: &anchor 1\n", SAM2D_ERR_UNSUPPORTED, 1);             /* anchor */
    expect_refused("a: 1\nb: *anchor\n", SAM2D_ERR_UNSUPPORTED, 2);         /* alias */
    expect_refused("a: !!int 1\n", SAM2D_ERR_UNSUPPORTED, 1);               /* tag */
    expect_refused("a: |\n  text\n", SAM2D_ERR_UNSUPPORTED, 1);             /* block scalar */
    expect_refused("a: 1\n---\nb: 2\n", SAM2D_ERR_UNSUPPORTED, 2);          /* second document */
    expect_refused("%YAML 1.2\na: 1\n", SAM2D_ERR_UNSUPPORTED, 1);          /* directive */
    expect_refused("a: 1\nb: [1, 2\n", SAM2D_ERR_FORMAT, 2);                /* flow not closed on its line */
    expect_refused("a: [1,, 2]\n", SAM2D_ERR_FORMAT, 1);                    /* empty item */
    expect_refused("a: [1, 2] x\n", SAM2D_ERR_FORMAT, 1);                   /* trailing text */
    expect_refused("a: 1\na: 2\n", SAM2D_ERR_FORMAT, 2);                    /* duplicate key */
    expect_refused("a: 1\njust text\n", SAM2D_ERR_FORMAT, 2);               /* not key: value */
    expect_refused("a: b: c\n", SAM2D_ERR_FORMAT, 1);                       /* nested mapping on one line */
    expect_refused("a: 'open\n", SAM2D_ERR_FORMAT, 1);                      /* multi-line quoted scalar */
    expect_refused("a: 1\n\tb: 2\n", SAM2D_ERR_FORMAT, 2);                  /* tab indentation */
    expect_refused("a: \"bad \\q escape\"\n", SAM2D_ERR_UNSUPPORTED, 1);    /* unknown escape */
    expect_refused("a: [x: 1]\n", SAM2D_ERR_UNSUPPORTED, 1);                /* mapping in a flow sequence */
    expect_refused("? complex\n", SAM2D_ERR_UNSUPPORTED, 1);                /* complex key */
    expect_refused("a:\n  b:\n    c: 1\n d: 2\n", SAM2D_ERR_FORMAT, 4);    /* dedent between levels */

    /* NUL bytes: refused before anything else */
    sam_yaml_doc doc;
    CHECK(sam_yaml_parse("a: 1\0b", 6, NULL, &doc) == SAM2D_ERR_FORMAT);
}

static void test_limits(void) {
    sam_yaml_doc doc;
    sam_yaml_params p = sam_yaml_default_params();
    /* depth: 40 nested mappings against a limit of 32 */
    char deep[4096];
    size_t k = 0;
    for (int i = 0; i < 40; i++) k += (size_t)snprintf(deep + k, sizeof deep - k, "%*sk%d:\n", i, "", i);
    snprintf(deep + k, sizeof deep - k, "%*sleaf: 1\n", 40, "");
    sam2d_status st = parse(deep, &doc);
    CHECK_MSG(st == SAM2D_ERR_LIMIT && strstr(sam2d_last_error(), "line"), "deep: %s", sam2d_last_error());
    /* deep flow nesting */
    char flow[256];
    memset(flow, '[', 100);
    memset(flow + 100, ']', 100);
    flow[200] = 0;
    char text[300];
    snprintf(text, sizeof text, "a: %s\n", flow);
    CHECK(parse(text, &doc) == SAM2D_ERR_LIMIT);
    /* size and node count */
    p.max_bytes = 8;
    CHECK(sam_yaml_parse("a: 1\nb: 2\n", 10, &p, &doc) == SAM2D_ERR_LIMIT);
    p = sam_yaml_default_params();
    p.max_nodes = 3;
    CHECK(sam_yaml_parse("a: [1, 2, 3]\n", 13, &p, &doc) == SAM2D_ERR_LIMIT);
    /* within limits again: nothing leaked by the failures above */
    size_t before = sam2d_memory_used();
    CHECK(parse("a: [1, 2, 3]\n", &doc) == SAM2D_OK);
    sam_yaml_free(&doc);
    CHECK(sam2d_memory_used() == before);
}

/* The golden micro config parses, with the nesting Meta's files use. */
static void test_micro_config(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/micro/config.yaml", SAM2D_TEST_DATA);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    sam_yaml_doc doc;
    sam2d_status st = sam_yaml_parse(buf, n, NULL, &doc);
    CHECK_MSG(st == SAM2D_OK, "%s", sam2d_last_error());
    if (st != SAM2D_OK) return;
    const sam_yaml_node *model = sam_yaml_get(doc.root, "model");
    const sam_yaml_node *trunk = sam_yaml_get(sam_yaml_get(model, "image_encoder"), "trunk");
    int64_t v[8];
    int cnt;
    CHECK(sam_yaml_as_int_list(sam_yaml_get(trunk, "stages"), v, 8, &cnt) == SAM2D_OK && cnt == 4 && v[2] == 3);
    const sam_yaml_node *me = sam_yaml_get(model, "memory_encoder");
    int64_t in_dim = 0;
    CHECK(sam_yaml_as_int(sam_yaml_get(me, "in_dim"), &in_dim) == SAM2D_OK && in_dim == 32);
    double eps = 0;
    CHECK(sam_yaml_as_double(sam_yaml_get(sam_yaml_get(sam_yaml_get(me, "fuser"), "layer"), "layer_scale_init_value"),
                             &eps) == SAM2D_OK &&
          eps == 1e-6);
    sam_yaml_free(&doc);
}

/* Random byte edits of a real config: the parser (and the config loader on
 * top) must either accept or refuse with a line number, never crash or leak
 * (the sanitizer pass runs this too). */
static void test_mutations(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/micro/config.yaml", SAM2D_TEST_DATA);
    FILE *f = fopen(path, "rb");
    if (!f) return;
    static char orig[65536], buf[65536];
    size_t n = fread(orig, 1, sizeof orig, f);
    fclose(f);
    static const char alphabet[] = " \t\n:#-[],{}'\"&*!|>?%0123456789.eE+abcxyz~\\";
    uint64_t rng = 12345;
    size_t before = sam2d_memory_used();
    int accepted = 0, refused = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, orig, n);
        size_t len = n;
        int edits = 1 + (int)((test_randf(&rng) + 1.0f) * 2.0f);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)((test_randf(&rng) + 1.0f) * 0.5f * (float)(len - 1));
            int op = (int)((test_randf(&rng) + 1.0f) * 1.5f);
            char ch = alphabet[(size_t)((test_randf(&rng) + 1.0f) * 0.5f * (float)(sizeof alphabet - 2))];
            if (op == 0) buf[at] = ch;                                  /* replace */
            else if (op == 1 && len > 1) memmove(buf + at, buf + at + 1, --len - at); /* delete */
            else if (len + 1 < sizeof buf) {                             /* insert */
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = ch;
                len++;
            }
        }
        sam_yaml_doc doc;
        sam2d_status st = sam_yaml_parse(buf, len, NULL, &doc);
        if (st == SAM2D_OK) {
            sam_yaml_free(&doc);
            sam2d_model_config c;
            st = sam2d_config_parse_yaml(buf, len, &c);
        } else if (!strstr(sam2d_last_error(), "line ")) {
            CHECK_MSG(0, "refusal without a line number: %s", sam2d_last_error());
        }
        if (st == SAM2D_OK) accepted++;
        else refused++;
    }
    printf("mutations: %d accepted, %d refused\n", accepted, refused);
    CHECK(refused > 0 && accepted > 0);
    CHECK(sam2d_memory_used() == before);
}

int main(void) {
    test_mutations();
    test_accepts();
    test_refuses();
    test_limits();
    test_micro_config();
    return test_finish();
}
