/* Sub-command registry of the `sam2d` program. Each src/cli/cmd_*.c file
 * registers its commands with SAM2D_COMMAND; main() dispatches on argv[1].
 * A command returns the process exit code: 0 ok, 1 runtime failure (message
 * on stderr), 2 usage error. */
#ifndef SAM2D_CLI_H
#define SAM2D_CLI_H

typedef int (*sam2d_command_fn)(int argc, char **argv); /* argv[0] is the command name */

typedef struct sam2d_command {
    const char *name;
    const char *summary; /* one line for `sam2d help` */
    sam2d_command_fn fn;
    struct sam2d_command *next;
} sam2d_command;

void sam2d_register_command(sam2d_command *cmd);

#define SAM2D_COMMAND(ident, cmd_name, cmd_summary, cmd_fn)                       \
    static sam2d_command ident##_cmd_ = {cmd_name, cmd_summary, cmd_fn, 0};      \
    __attribute__((constructor)) static void ident##_register_(void) {           \
        sam2d_register_command(&ident##_cmd_);                                   \
    }

/* Exit codes shared by all commands. */
enum { SAM2D_EXIT_OK = 0, SAM2D_EXIT_FAIL = 1, SAM2D_EXIT_USAGE = 2 };

/* Print "sam2d <cmd>: <msg>: <last error>" to stderr and return SAM2D_EXIT_FAIL. */
int sam2d_cli_fail(const char *cmd, const char *what);

#include <stdbool.h>
#include <stddef.h>

/* A whole decimal integer in [lo, hi]. */
bool sam2d_cli_parse_int(const char *s, long lo, long hi, int *out);
/* "a,b,c": between min and max finite floats, comma-separated, nothing else. */
bool sam2d_cli_parse_floats(const char *s, float *out, int min, int max, int *n);
/* The checkpoint the service would load: MODEL_DIR/sam2.1_hiera_<SAM2_MODEL_SIZE>.pt, or the
 * .safetensors of that name when only it exists (defaults ./models and base_plus). */
const char *sam2d_cli_default_model(char *buf, size_t len);
/* The compute device of a command: `flag` (--device), else SAM2_DEVICE, else "auto". Checks the
 * name (auto, cpu, cuda, cuda:N, devsim) and that this build has a GPU back end for cuda[:N];
 * otherwise prints "sam2d <cmd>: ..." and returns NULL (exit with SAM2D_EXIT_USAGE). A GPU that
 * fails to start is reported later, by the model load (exit 1). */
const char *sam2d_cli_device(const char *cmd, const char *flag);
/* The help line of --device, shared by the commands. */
#define SAM2D_CLI_DEVICE_HELP                                                                                  \
    "  --device D                  auto (the GPU when one works, else the CPU), cpu, cuda, cuda:N, devsim\n" \
    "                              (default SAM2_DEVICE, else auto)\n"

#endif
