/* A small, bounded YAML subset: enough for Meta's hydra model configs, and
 * nothing more. Accepted: block mappings nested by indentation (spaces),
 * flow sequences on one line (`[1, 2, [3, 4]]`), plain / 'single' / "double"
 * quoted scalars, `#` comments, a leading `# @package` line. Refused with the
 * line number: tabs in indentation, block sequences (`- x`), flow mappings,
 * anchors / aliases / tags, block scalars (`|`, `>`), several documents,
 * directives, duplicate keys, multi-line scalars. Hydra interpolations
 * (`${...}`) stay plain text: the config loader refuses them.
 *
 * Values stay text; typed access (null, bool, int, float) goes through the
 * sam_yaml_as_* helpers with YAML 1.1 / OmegaConf spellings (True, 1e-6, ~).
 *
 * Thread safety: a parsed document is immutable; parse/free are reentrant. */
#ifndef SAM_IO_YAML_H
#define SAM_IO_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "sam2d/sam2d.h"

typedef enum { SAM_YAML_MAP = 0, SAM_YAML_SEQ, SAM_YAML_SCALAR } sam_yaml_kind;

typedef struct sam_yaml_node sam_yaml_node;
struct sam_yaml_node {
    sam_yaml_kind kind;
    int line;             /* 1-based source line, for messages */
    const char *key;      /* key in the parent mapping; NULL for sequence items and the root */
    const char *text;     /* SCALAR: the value without quotes ("" for an empty value) */
    bool quoted;          /* SCALAR was quoted: never null / bool / number */
    sam_yaml_node *first; /* MAP members / SEQ items, in file order */
    sam_yaml_node *next;  /* next sibling */
    size_t count;         /* number of children */
};

typedef struct {
    size_t max_bytes; /* refuse longer texts; 0 = 1 MiB */
    int max_depth;    /* nesting of mappings + sequences; 0 = 32 */
    size_t max_nodes; /* 0 = 100000 */
} sam_yaml_params;

typedef struct {
    sam_yaml_node *root; /* a MAP (empty for an empty text) */
    sam_arena arena;     /* owns every node and string */
} sam_yaml_doc;

sam_yaml_params sam_yaml_default_params(void);

/* Parse `len` bytes of text. On failure the message (sam2d_last_error) names the
 * line; *doc is left empty and needs no free. */
sam2d_status sam_yaml_parse(const char *text, size_t len, const sam_yaml_params *params, sam_yaml_doc *doc);
void sam_yaml_free(sam_yaml_doc *doc);

/* Member `key` of a mapping; NULL when absent or when map is not a MAP. */
const sam_yaml_node *sam_yaml_get(const sam_yaml_node *map, const char *key);
/* i-th child of a MAP or SEQ; NULL past the end. */
const sam_yaml_node *sam_yaml_child(const sam_yaml_node *node, size_t i);

/* Typed views of a scalar. Each fails (SAM2D_ERR_FORMAT, message with the line
 * and key) when the node is missing, not a scalar, or spelled otherwise. */
bool sam_yaml_is_null(const sam_yaml_node *n); /* NULL node, "", ~, null, Null, NULL (unquoted) */
sam2d_status sam_yaml_as_bool(const sam_yaml_node *n, bool *out);      /* true/True/TRUE, false/... */
sam2d_status sam_yaml_as_int(const sam_yaml_node *n, int64_t *out);    /* decimal, optional sign */
sam2d_status sam_yaml_as_double(const sam_yaml_node *n, double *out);  /* 3, -1.5, 1e-6, .5 */
/* Flow sequence of integers, at most cap of them; *count gets how many. */
sam2d_status sam_yaml_as_int_list(const sam_yaml_node *n, int64_t *out, int cap, int *count);

#endif
