/* The restricted unpickler on its own: the opcodes torch emits (protocol 2,
 * plus harmless protocol 4 ones), state-dict shapes it must accept, and the
 * constructs it must refuse (foreign globals, object construction, malformed
 * stacks, limits). */
#include "io/pickle.h"
#include "sam2d/checkpoint.h"
#include "test_checkpoint_util.h"
#include "test_util.h"

static sam2d_status run(const bb *b, const sam_pk_limits *lim, sam_pk_state_dict *sd) {
    return sam_pickle_state_dict(b->p, b->n, lim, sd);
}

static void expect(const char *what, const bb *b, const sam_pk_limits *lim, sam2d_status want, const char *substr) {
    sam_pk_state_dict sd;
    sam2d_status s = run(b, lim, &sd);
    const char *msg = sam2d_last_error();
    printf("%-36s -> %s: %s\n", what, sam2d_status_str(s), s ? msg : "");
    CHECK_MSG(s == want, "%s: got %s want %s (%s)", what, sam2d_status_str(s), sam2d_status_str(want), msg);
    if (s != SAM2D_OK && substr) CHECK_MSG(strstr(msg, substr) != NULL, "%s: '%s' lacks '%s'", what, msg, substr);
    CHECK(s == SAM2D_OK || (sd.tensors == NULL && sd.n_tensors == 0));
    sam_pickle_state_dict_free(&sd);
}

static const int64_t S2[] = {2}, T1[] = {1};

static void proto2(bb *b) {
    pk_op(b, 0x80);
    bb_u8(b, 2);
}

static void test_accepts(void) {
    sam_pk_state_dict sd;
    /* bare state dict, Parameter wrapper, 7-argument _rebuild_tensor_v2, shared storage */
    bb b = {0};
    proto2(&b);
    pk_global(&b, "collections", "OrderedDict");
    pk_op(&b, ')');
    pk_op(&b, 'R');
    pk_op(&b, 'q');
    bb_u8(&b, 0);
    pk_op(&b, '(');
    pk_str(&b, "p");
    pk_global(&b, "torch._utils", "_rebuild_parameter");
    pk_global(&b, "torch._utils", "_rebuild_tensor_v2");
    pk_op(&b, '(');
    pk_op(&b, '(');
    pk_str(&b, "storage");
    pk_global(&b, "torch", "HalfStorage");
    pk_str(&b, "k0");
    pk_str(&b, "cuda:0");
    pk_int(&b, 4);
    pk_op(&b, 't');
    pk_op(&b, 'Q');
    pk_int(&b, 2);
    pk_int_tuple(&b, 1, S2);
    pk_int_tuple(&b, 1, T1);
    pk_op(&b, 0x88); /* requires_grad True */
    pk_global(&b, "collections", "OrderedDict");
    pk_op(&b, ')');
    pk_op(&b, 'R');
    pk_op(&b, '}'); /* metadata */
    pk_op(&b, 't');
    pk_op(&b, 'R');
    pk_op(&b, 0x88);
    pk_global(&b, "collections", "OrderedDict");
    pk_op(&b, ')');
    pk_op(&b, 'R');
    pk_op(&b, 0x87);
    pk_op(&b, 'R');
    /* a tensor with Python state: _rebuild_from_type_v2(_rebuild_tensor_v2, torch.Tensor, args, state) */
    pk_str(&b, "q");
    pk_global(&b, "torch._tensor", "_rebuild_from_type_v2");
    pk_op(&b, '(');
    pk_global(&b, "torch._utils", "_rebuild_tensor_v2");
    pk_global(&b, "torch", "Tensor");
    pk_op(&b, '(');
    pk_op(&b, '(');
    pk_str(&b, "storage");
    pk_global(&b, "torch", "HalfStorage");
    pk_str(&b, "k0");
    pk_str(&b, "cuda:0");
    pk_int(&b, 4);
    pk_op(&b, 't');
    pk_op(&b, 'Q');
    pk_int(&b, 0);
    pk_int_tuple(&b, 1, S2);
    pk_int_tuple(&b, 1, T1);
    pk_op(&b, 0x89);
    pk_op(&b, 'N');
    pk_op(&b, 't');
    pk_op(&b, '}');
    pk_op(&b, 't');
    pk_op(&b, 'R');
    pk_str(&b, "not_a_tensor");
    pk_int(&b, -5);
    pk_op(&b, 'u');
    /* the _metadata attribute torch attaches with BUILD */
    pk_op(&b, '}');
    pk_str(&b, "_metadata");
    pk_op(&b, 'h');
    bb_u8(&b, 0);
    pk_op(&b, 's');
    pk_op(&b, 'b');
    pk_op(&b, '.');
    save_seed("pk_param", &b);
    sam2d_status s = run(&b, NULL, &sd);
    CHECK_MSG(s == SAM2D_OK, "bare state dict: %s", sam2d_last_error());
    if (s == SAM2D_OK) {
        CHECK(sd.n_tensors == 2 && sd.n_storages == 1);
        CHECK(sd.n_tensors == 2 && strcmp(sd.tensors[1].name, "q") == 0 && sd.tensors[1].offset == 0 && sd.tensors[1].storage == 0);
        CHECK(strcmp(sd.tensors[0].name, "p") == 0 && sd.tensors[0].offset == 2 && sd.tensors[0].ndim == 1 &&
              sd.tensors[0].shape[0] == 2 && sd.tensors[0].stride[0] == 1);
        CHECK(strcmp(sd.storages[0].key, "k0") == 0 && sd.storages[0].dtype == SAM_PK_F16 && sd.storages[0].numel == 4);
    }
    sam_pickle_state_dict_free(&sd);
    bb_free(&b);

    /* protocol 4 framing: FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE; extra top-level entries */
    proto2(&b);
    b.p[1] = 4;
    pk_op(&b, 0x95);
    bb_u64(&b, 0);
    pk_op(&b, '}');
    pk_op(&b, 0x94);
    pk_op(&b, '(');
    pk_op(&b, 0x8c);
    bb_u8(&b, 5);
    bb_str(&b, "epoch");
    pk_op(&b, 0x8a); /* LONG1 -2 */
    bb_u8(&b, 1);
    bb_u8(&b, 0xfe);
    pk_op(&b, 0x8c);
    bb_u8(&b, 5);
    bb_str(&b, "model");
    pk_op(&b, '}');
    pk_op(&b, 0x94);
    pk_str(&b, "t");
    pk_op(&b, 0x8c);
    bb_u8(&b, 12);
    bb_str(&b, "torch._utils");
    pk_op(&b, 0x8c);
    bb_u8(&b, 18);
    bb_str(&b, "_rebuild_tensor_v2");
    pk_op(&b, 0x93);
    pk_op(&b, '(');
    pk_op(&b, '(');
    pk_str(&b, "storage");
    pk_global(&b, "torch", "BFloat16Storage");
    pk_str(&b, "0");
    pk_str(&b, "cpu");
    pk_int(&b, 2);
    pk_op(&b, 't');
    pk_op(&b, 'Q');
    pk_int(&b, 0);
    pk_int_tuple(&b, 1, S2);
    pk_int_tuple(&b, 1, T1);
    pk_op(&b, 0x89);
    pk_op(&b, 'N');
    pk_op(&b, 't');
    pk_op(&b, 'R');
    pk_op(&b, 's');
    pk_str(&b, "lr");
    pk_op(&b, 'G'); /* BINFLOAT 0.5 */
    bb_raw(&b, "\x3f\xe0\x00\x00\x00\x00\x00\x00", 8);
    pk_op(&b, 'u');
    pk_op(&b, '.');
    save_seed("pk_proto4", &b);
    s = run(&b, NULL, &sd);
    CHECK_MSG(s == SAM2D_OK, "protocol 4 opcodes: %s", sam2d_last_error());
    if (s == SAM2D_OK) CHECK(sd.n_tensors == 1 && strcmp(sd.tensors[0].name, "t") == 0 && sd.storages[0].dtype == SAM_PK_BF16);
    sam_pickle_state_dict_free(&sd);
    bb_free(&b);
}

/* A state dict with one tensor whose persistent id / call is altered by `variant`. */
static bb variant_pickle(int variant) {
    bb b = {0};
    pk_begin_model(&b);
    if (variant == 4) {
        pk_op(&b, 'X');
        bb_u32(&b, 3);
        bb_raw(&b, "a\0b", 3);
    } else {
        pk_str(&b, "x");
    }
    pk_global(&b, "torch._utils", "_rebuild_tensor_v2");
    pk_op(&b, '(');
    pk_op(&b, '(');
    pk_str(&b, variant == 1 ? "module" : "storage");
    pk_global(&b, "torch", "FloatStorage");
    pk_str(&b, variant == 2 ? "../../etc/passwd" : "0");
    pk_str(&b, "cpu");
    pk_int(&b, 2);
    pk_op(&b, 't');
    pk_op(&b, 'Q');
    pk_int(&b, variant == 3 ? -1 : 0);
    pk_int_tuple(&b, 1, S2);
    pk_int_tuple(&b, 1, T1);
    pk_op(&b, 0x89);
    pk_op(&b, 'N');
    pk_op(&b, 't');
    pk_op(&b, 'R');
    pk_end_model(&b);
    return b;
}

static void raw(bb *b, const char *bytes, size_t n) {
    memset(b, 0, sizeof *b);
    bb_raw(b, bytes, n);
}

#define RAW(b, lit) raw((b), (lit), sizeof(lit) - 1)

static void test_refusals(void) {
    bb b;
    /* foreign globals, through every door */
    memset(&b, 0, sizeof b);
    proto2(&b);
    pk_global(&b, "builtins", "eval");
    pk_str(&b, "__import__('os').system('id')");
    pk_op(&b, 0x85);
    pk_op(&b, 'R');
    pk_op(&b, '.');
    expect("builtins.eval via GLOBAL", &b, NULL, SAM2D_ERR_UNSUPPORTED, "'builtins.eval'");
    bb_free(&b);
    proto2(&b);
    pk_str(&b, "os");
    pk_str(&b, "system");
    pk_op(&b, 0x93);
    pk_str(&b, "id");
    pk_op(&b, 0x85);
    pk_op(&b, 'R');
    pk_op(&b, '.');
    save_seed("pk_stack_global_os_system", &b);
    expect("os.system via STACK_GLOBAL", &b, NULL, SAM2D_ERR_UNSUPPORTED, "'os.system'");
    bb_free(&b);
    proto2(&b);
    pk_global(&b, "torch", "load");
    pk_op(&b, '.');
    expect("torch.load (not allow-listed)", &b, NULL, SAM2D_ERR_UNSUPPORTED, "'torch.load'");
    bb_free(&b);
    proto2(&b);
    pk_global(&b, "torch", "FloatStorage");
    pk_op(&b, ')');
    pk_op(&b, 'R');
    pk_op(&b, '.');
    expect("storage class called", &b, NULL, SAM2D_ERR_UNSUPPORTED, "storage class");
    bb_free(&b);
    proto2(&b);
    pk_global(&b, "torch", "Tensor");
    pk_op(&b, ')');
    pk_op(&b, 'R');
    pk_op(&b, '.');
    expect("tensor class called", &b, NULL, SAM2D_ERR_UNSUPPORTED, "tensor class");
    bb_free(&b);
    /* nested _rebuild_from_type_v2 is refused (keeps recursion at one level) */
    proto2(&b);
    pk_global(&b, "torch._tensor", "_rebuild_from_type_v2");
    pk_op(&b, '(');
    pk_global(&b, "torch._tensor", "_rebuild_from_type_v2");
    pk_global(&b, "torch", "Tensor");
    pk_op(&b, ')');
    pk_op(&b, 'N');
    pk_op(&b, 't');
    pk_op(&b, 'R');
    pk_op(&b, '.');
    expect("nested _rebuild_from_type_v2", &b, NULL, SAM2D_ERR_UNSUPPORTED, "unsupported function");
    bb_free(&b);
    RAW(&b, "\x80\x02" "ccollections\nOrderedDict\n)\x81.");
    expect("NEWOBJ", &b, NULL, SAM2D_ERR_UNSUPPORTED, "not allowed");
    bb_free(&b);
    RAW(&b, "\x80\x02" "(ios\nsystem\nS'id'\n.");
    expect("INST (text protocol)", &b, NULL, SAM2D_ERR_UNSUPPORTED, "not allowed");
    bb_free(&b);
    RAW(&b, "\x80\x02" "}N\x85R.");
    expect("REDUCE of a non-callable", &b, NULL, SAM2D_ERR_UNSUPPORTED, "REDUCE calls a dict");
    bb_free(&b);
    RAW(&b, "\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.");
    expect("OrderedDict with arguments", &b, NULL, SAM2D_ERR_UNSUPPORTED, "OrderedDict");
    bb_free(&b);
    RAW(&b, "\x80\x02" "}K\x01" "a.");
    expect("APPEND on a dict", &b, NULL, SAM2D_ERR_UNSUPPORTED, "APPEND on a dict");
    bb_free(&b);
    RAW(&b, "\x80\x02" "]K\x01" "b.");
    expect("BUILD on a list", &b, NULL, SAM2D_ERR_UNSUPPORTED, "BUILD");
    bb_free(&b);

    /* persistent ids and tensor arguments */
    b = variant_pickle(1);
    expect("persistent id not 'storage'", &b, NULL, SAM2D_ERR_UNSUPPORTED, "persistent id");
    bb_free(&b);
    b = variant_pickle(2);
    expect("storage key with a path", &b, NULL, SAM2D_ERR_FORMAT, "invalid character");
    bb_free(&b);
    b = variant_pickle(3);
    expect("negative storage offset", &b, NULL, SAM2D_ERR_FORMAT, "storage offset");
    bb_free(&b);
    b = variant_pickle(4);
    expect("tensor name with NUL", &b, NULL, SAM2D_ERR_FORMAT, "NUL");
    bb_free(&b);
    b = variant_pickle(0);
    expect("valid variant", &b, NULL, SAM2D_OK, NULL);
    bb_free(&b);
    {
        static const int64_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
        bb c = {0};
        pk_begin_model(&c);
        pk_tensor(&c, "x", "FloatStorage", "0", 1, 0, 9, s9, s9);
        pk_end_model(&c);
        expect("nine dimensions", &c, NULL, SAM2D_ERR_UNSUPPORTED, "dimensions");
        bb_free(&c);
        pk_begin_model(&c);
        pk_tensor(&c, "x", "FloatStorage", "0", 2, 0, 1, S2, T1);
        pk_tensor(&c, "y", "HalfStorage", "0", 2, 0, 1, S2, T1);
        pk_end_model(&c);
        expect("one key, two storage types", &c, NULL, SAM2D_ERR_FORMAT, "declared twice");
        bb_free(&c);
    }

    /* malformed streams */
    RAW(&b, "\x80\x02" "K\x01");
    expect("no STOP", &b, NULL, SAM2D_ERR_FORMAT, "without STOP");
    bb_free(&b);
    RAW(&b, "\x80\x02" "K");
    expect("truncated operand", &b, NULL, SAM2D_ERR_FORMAT, "truncated");
    bb_free(&b);
    RAW(&b, "\x80\x02" "(K\x01" "u.");
    expect("SETITEMS without a dict", &b, NULL, SAM2D_ERR_FORMAT, "underflow");
    bb_free(&b);
    RAW(&b, "\x80\x02" "(K\x01" "0" "0.");
    expect("POP below MARK", &b, NULL, SAM2D_ERR_FORMAT, "underflow");
    bb_free(&b);
    RAW(&b, "\x80\x02" "h\x07.");
    expect("memo read before set", &b, NULL, SAM2D_ERR_FORMAT, "memo key 7");
    bb_free(&b);
    RAW(&b, "\x80\x02" "Nr\xff\xff\xff\x7f.");
    expect("huge memo key", &b, NULL, SAM2D_ERR_LIMIT, "memo key");
    bb_free(&b);
    RAW(&b, "\x80\x02" "\x8a\x09" "123456789.");
    expect("LONG1 over 64 bits", &b, NULL, SAM2D_ERR_UNSUPPORTED, "64 bits");
    bb_free(&b);
    RAW(&b, "\x80\x02" "\x8d\xff\xff\xff\xff\xff\xff\xff\xff.");
    expect("BINUNICODE8 huge length", &b, NULL, SAM2D_ERR_FORMAT, "runs past the end");
    bb_free(&b);
    RAW(&b, "\x80\x07.");
    expect("protocol 7", &b, NULL, SAM2D_ERR_UNSUPPORTED, "protocol 7");
    bb_free(&b);
    RAW(&b, "\x80\x02" "\xfa.");
    expect("unknown opcode", &b, NULL, SAM2D_ERR_FORMAT, "unknown opcode 0xfa");
    bb_free(&b);
    RAW(&b, "\x80\x02" "]q\x00h\x00" "a."); /* a list containing itself: harmless */
    expect("top level is a list", &b, NULL, SAM2D_ERR_FORMAT, "expected a dict");
    bb_free(&b);
    RAW(&b, "\x80\x02" "}X\x05\x00\x00\x00modelK\x01s.");
    expect("'model' is not a dict", &b, NULL, SAM2D_ERR_FORMAT, "checkpoint['model']");
    bb_free(&b);
    RAW(&b, "\x80\x02" "}.");
    expect("no tensors", &b, NULL, SAM2D_ERR_FORMAT, "no tensors");
    bb_free(&b);

    /* limits: stack depth, object count, tensor count */
    bb deep = {0};
    proto2(&deep);
    for (int i = 0; i < 5000; i++) pk_op(&deep, '(');
    pk_op(&deep, '.');
    sam_pk_limits lim = {0, 0, 1000};
    expect("5000 nested MARKs, depth 1000", &deep, &lim, SAM2D_ERR_LIMIT, "marks");
    bb_free(&deep);
    proto2(&deep);
    for (int i = 0; i < 5000; i++) pk_op(&deep, 'N');
    pk_op(&deep, '.');
    expect("5000 values, depth 1000", &deep, &lim, SAM2D_ERR_LIMIT, "stack");
    lim.max_stack = 0;
    lim.max_objects = 100;
    expect("5000 values, 100 objects", &deep, &lim, SAM2D_ERR_LIMIT, "objects");
    bb_free(&deep);
    pk_begin_model(&deep);
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        pk_tensor(&deep, name, "FloatStorage", "0", 2, 0, 1, S2, T1);
    }
    pk_end_model(&deep);
    sam_pk_limits lt = {10, 0, 0};
    expect("20 tensors, limit 10", &deep, &lt, SAM2D_ERR_LIMIT, "tensors");
    expect("20 tensors, default limits", &deep, NULL, SAM2D_OK, NULL);
    /* every prefix of a valid pickle fails cleanly */
    size_t ok = 0;
    for (size_t n = 0; n + 1 < deep.n; n++) {
        sam_pk_state_dict sd;
        if (sam_pickle_state_dict(deep.p, n, NULL, &sd) == SAM2D_OK) ok++;
        sam_pickle_state_dict_free(&sd);
    }
    CHECK_MSG(ok == 0, "%zu prefixes of a pickle were accepted", ok);
    bb_free(&deep);
}

int main(void) {
    size_t mem0 = sam2d_memory_used();
    test_accepts();
    test_refusals();
    CHECK_MSG(sam2d_memory_used() == mem0, "memory leaked: %zu bytes", sam2d_memory_used() - mem0);
    return test_finish();
}
