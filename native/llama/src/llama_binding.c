// The llama.cpp backend's binding: plain N-API over llama.cpp's public C API. libllama is opened
// at run time (dlopen) from one of node-llama-cpp's prebuilt folders (CPU, CUDA or Vulkan), and
// every function is looked up by name, typed from the pinned commit's llama.h. What ParallelComp
// needs from it: a batch whose tokens carry their own positions and sequence ids, the logits of
// chosen tokens, and KV cells a new sequence can share (llama_memory_seq_cp, unified KV).
//
// JS API (src/engine/llama-cpp.ts wraps it and validates first):
//   open(libPath, binsDir): { devices: [{ name, description, type, freeBytes, totalBytes }] }
//   lastError(): string                      the last error line llama.cpp logged ("" if none)
//   loadModel(path, nGpuLayers, useMmap): model
//   modelInfo(model): { nCtxTrain, nLayer, nEmbd, nHead, nHeadKv, nVocab, desc, sizeBytes, arch }
//   newContext(model, nCtx, nBatch, nUbatch, nSeqMax, nThreads, kvF16, flashAttn, unified): context
//   seqMove(from, to, srcSeq, dstSeq): bytes  a sequence's KV cells copied into another context
//   decode(ctx, tokens: Int32Array, pos: Int32Array, seq: Int32Array, want: Uint8Array, n,
//          out: Float32Array): void      logits of the wanted tokens, in batch order, into out
//   seqRm(ctx, seq, p0, p1): boolean     seqCp(ctx, src, dst, p0, p1): void
//   seqPosMax(ctx, seq), seqPosMin(ctx, seq): number (-1: empty)          clear(ctx): void
//   freeContext(ctx), freeModel(model)   explicit frees (the finalizers do it otherwise)
#include <dlfcn.h>
#include <math.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

// ---- the functions we use, looked up in the opened libllama (and the ggml it links) ----

#define LLAMA_FUNCTIONS(X)                                                                          \
    X(llama_backend_init) X(llama_log_set) X(ggml_backend_load_all_from_path)                      \
    X(ggml_backend_dev_count) X(ggml_backend_dev_get) X(ggml_backend_dev_name)                     \
    X(ggml_backend_dev_description) X(ggml_backend_dev_type) X(ggml_backend_dev_memory)            \
    X(llama_model_default_params) X(llama_model_load_from_file) X(llama_model_free)                \
    X(llama_model_n_ctx_train) X(llama_model_n_layer) X(llama_model_n_embd) X(llama_model_n_head)  \
    X(llama_model_n_head_kv) X(llama_model_get_vocab) X(llama_vocab_n_tokens)                      \
    X(llama_model_meta_val_str) X(llama_model_desc) X(llama_model_size)                            \
    X(llama_context_default_params) X(llama_init_from_model) X(llama_free) X(llama_get_memory)     \
    X(llama_memory_seq_rm) X(llama_memory_seq_cp) X(llama_memory_seq_pos_max) X(llama_memory_seq_pos_min) X(llama_memory_clear) \
    X(llama_batch_init) X(llama_batch_free) X(llama_decode) X(llama_get_logits_ith)                \
    X(llama_state_seq_get_size) X(llama_state_seq_get_data) X(llama_state_seq_set_data)           \
    X(llama_model_n_swa) X(llama_model_is_recurrent) X(llama_model_is_hybrid)

#define DECLARE(f) static __typeof__(&f) p_##f;
LLAMA_FUNCTIONS(DECLARE)

static void *lib = NULL;
static char lib_path[4096];
static char last_error[1024];

// llama.cpp logs through this: errors are kept for the next thrown message, nothing is printed
// unless PARALLELCOMP_LLAMA_LOG is set (its INFO lines would bury ours).
static int log_level_kept = -1;
static void on_log(enum ggml_log_level level, const char *text, void *user) {
    if (getenv("PARALLELCOMP_LLAMA_LOG")) fputs(text, stderr);
    if (level == GGML_LOG_LEVEL_CONT) level = (enum ggml_log_level)log_level_kept;
    else log_level_kept = level;
    if (level != GGML_LOG_LEVEL_ERROR) return;
    size_t n = strlen(last_error);
    if (n > 0 && last_error[n - 1] == '\n') n = 0; // a finished line: start the next one
    snprintf(last_error + n, sizeof last_error - n, "%s", text);
}

// ---- argument helpers ----

#define CHECK_NAPI(call)                                                                    \
    do {                                                                                    \
        if ((call) != napi_ok) {                                                            \
            napi_throw_error(env, NULL, "parallelcomp llama.cpp: N-API call failed: " #call); \
            return NULL;                                                                    \
        }                                                                                   \
    } while (0)

static napi_value throw_msg(napi_env env, const char *fmt, const char *a, const char *b) {
    char msg[10240];
    snprintf(msg, sizeof msg, fmt, a, b);
    napi_throw_error(env, NULL, msg);
    return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *fn) {
    size_t argc = want;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
        throw_msg(env, "%s: expected more arguments%s", fn, "");
        return 0;
    }
    return 1;
}

static int get_i64(napi_env env, napi_value v, const char *fn, int64_t lo, int64_t hi, int64_t *out) {
    double d;
    if (napi_get_value_double(env, v, &d) != napi_ok || d != floor(d) || d < (double)lo || d > (double)hi) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: an integer argument is out of [%lld, %lld]", fn, (long long)lo, (long long)hi);
        napi_throw_range_error(env, NULL, msg);
        return 0;
    }
    *out = (int64_t)d;
    return 1;
}

static int get_str(napi_env env, napi_value v, char *buf, size_t cap, const char *fn) {
    size_t len;
    if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok || len + 1 >= cap) {
        throw_msg(env, "%s: expected a string shorter than 4096 bytes%s", fn, "");
        return 0;
    }
    return 1;
}

static int get_ta(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len, const char *fn) {
    bool is_ta = false;
    napi_typedarray_type type;
    napi_value ab;
    size_t off;
    if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
        napi_get_typedarray_info(env, v, &type, len, data, &ab, &off) != napi_ok || type != want) {
        throw_msg(env, "%s: a typed array argument has the wrong type%s", fn, "");
        return 0;
    }
    return 1;
}

static int require_lib(napi_env env, const char *fn) {
    if (lib) return 1;
    throw_msg(env, "%s: libllama is not open (call open first)%s", fn, "");
    return 0;
}

// ---- handles: a model outlives its contexts (a context holds a reference to its model) ----

typedef struct {
    struct llama_model *model;
    int contexts; // live contexts; the model is freed when this is 0 and it was released
    int released;
} Model;

typedef struct {
    struct llama_context *ctx;
    Model *m;
    napi_ref model_ref;
    int32_t n_vocab;
    llama_batch batch; // reused by every decode; grown when a larger one comes
    int32_t batch_cap;
} Context;

static void model_release(Model *m) {
    if (m->model && m->released && m->contexts == 0) {
        p_llama_model_free(m->model);
        m->model = NULL;
    }
}

static void finalize_model(napi_env env, void *data, void *hint) {
    Model *m = data;
    m->released = 1;
    model_release(m);
    if (!m->model) free(m);
}

static void context_release(napi_env env, Context *c) {
    if (!c->ctx) return;
    p_llama_free(c->ctx);
    c->ctx = NULL;
    if (c->batch_cap > 0) p_llama_batch_free(c->batch);
    c->batch_cap = 0;
    c->m->contexts--;
    model_release(c->m);
    if (env && c->model_ref) {
        napi_delete_reference(env, c->model_ref);
        c->model_ref = NULL;
    }
}

static void finalize_context(napi_env env, void *data, void *hint) {
    Context *c = data;
    context_release(env, c);
    free(c);
}

static Model *get_model(napi_env env, napi_value v, const char *fn) {
    Model *m = NULL;
    if (napi_get_value_external(env, v, (void **)&m) != napi_ok || !m) {
        throw_msg(env, "%s: not a model handle%s", fn, "");
        return NULL;
    }
    if (!m->model || m->released) {
        throw_msg(env, "%s: the model was freed%s", fn, "");
        return NULL;
    }
    return m;
}

static Context *get_context(napi_env env, napi_value v, const char *fn) {
    Context *c = NULL;
    if (napi_get_value_external(env, v, (void **)&c) != napi_ok || !c) {
        throw_msg(env, "%s: not a context handle%s", fn, "");
        return NULL;
    }
    if (!c->ctx) {
        throw_msg(env, "%s: the context was freed%s", fn, "");
        return NULL;
    }
    return c;
}

// ---- entry points ----

static napi_value set_prop_str(napi_env env, napi_value obj, const char *key, const char *val) {
    napi_value v;
    if (napi_create_string_utf8(env, val ? val : "", NAPI_AUTO_LENGTH, &v) != napi_ok) return NULL;
    napi_set_named_property(env, obj, key, v);
    return v;
}

static void set_prop_num(napi_env env, napi_value obj, const char *key, double val) {
    napi_value v;
    if (napi_create_double(env, val, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

static const char *dev_type_name(enum ggml_backend_dev_type t) {
    switch (t) {
        case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
        default: return "other";
    }
}

/** Opens libllama once per process; a second call must name the same file. */
static napi_value js_open(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    char path[4096], bins[4096];
    if (!get_args(env, info, 2, argv, "open") || !get_str(env, argv[0], path, sizeof path, "open") ||
        !get_str(env, argv[1], bins, sizeof bins, "open"))
        return NULL;
    if (lib && strcmp(path, lib_path) != 0) return throw_msg(env, "open: %s is already open in this process (asked for %s)", lib_path, path);
    if (!lib) {
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) return throw_msg(env, "%s%s", dlerror(), "");
#define LOOKUP(f)                                                                           \
    p_##f = (__typeof__(&f))dlsym(h, #f);                                                   \
    if (!p_##f) {                                                                           \
        dlclose(h);                                                                         \
        return throw_msg(env, "%s does not export %s: not the pinned llama.cpp", path, #f); \
    }
        LLAMA_FUNCTIONS(LOOKUP)
#undef LOOKUP
        lib = h;
        snprintf(lib_path, sizeof lib_path, "%s", path);
        p_llama_log_set(on_log, NULL);
        p_ggml_backend_load_all_from_path(bins);
        p_llama_backend_init();
    }
    napi_value out, devices;
    CHECK_NAPI(napi_create_object(env, &out));
    size_t n = p_ggml_backend_dev_count();
    CHECK_NAPI(napi_create_array_with_length(env, n, &devices));
    for (size_t i = 0; i < n; i++) {
        ggml_backend_dev_t d = p_ggml_backend_dev_get(i);
        napi_value o;
        CHECK_NAPI(napi_create_object(env, &o));
        size_t free_b = 0, total_b = 0;
        p_ggml_backend_dev_memory(d, &free_b, &total_b);
        set_prop_str(env, o, "name", p_ggml_backend_dev_name(d));
        set_prop_str(env, o, "description", p_ggml_backend_dev_description(d));
        set_prop_str(env, o, "type", dev_type_name(p_ggml_backend_dev_type(d)));
        set_prop_num(env, o, "freeBytes", (double)free_b);
        set_prop_num(env, o, "totalBytes", (double)total_b);
        CHECK_NAPI(napi_set_element(env, devices, i, o));
    }
    CHECK_NAPI(napi_set_named_property(env, out, "devices", devices));
    return out;
}

static napi_value js_last_error(napi_env env, napi_callback_info info) {
    char line[sizeof last_error];
    snprintf(line, sizeof line, "%s", last_error);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' ')) line[--n] = 0;
    napi_value v;
    CHECK_NAPI(napi_create_string_utf8(env, line, NAPI_AUTO_LENGTH, &v));
    return v;
}

static napi_value js_load_model(napi_env env, napi_callback_info info) {
    napi_value argv[3];
    char path[4096];
    int64_t n_gpu_layers, use_mmap;
    if (!require_lib(env, "loadModel") || !get_args(env, info, 3, argv, "loadModel") ||
        !get_str(env, argv[0], path, sizeof path, "loadModel") ||
        !get_i64(env, argv[1], "loadModel", -1, 1 << 20, &n_gpu_layers) || !get_i64(env, argv[2], "loadModel", 0, 1, &use_mmap))
        return NULL;
    struct llama_model_params mp = p_llama_model_default_params();
    mp.n_gpu_layers = (int32_t)n_gpu_layers;
    mp.load_mode = use_mmap ? mp.load_mode : LLAMA_LOAD_MODE_NONE;
    last_error[0] = 0;
    struct llama_model *model = p_llama_model_load_from_file(path, mp);
    if (!model) return throw_msg(env, "llama.cpp could not load %s: %s", path, last_error[0] ? last_error : "no reason given");
    Model *m = calloc(1, sizeof *m);
    m->model = model;
    napi_value ext;
    CHECK_NAPI(napi_create_external(env, m, finalize_model, NULL, &ext));
    return ext;
}

static napi_value js_model_info(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    if (!require_lib(env, "modelInfo") || !get_args(env, info, 1, argv, "modelInfo")) return NULL;
    Model *m = get_model(env, argv[0], "modelInfo");
    if (!m) return NULL;
    napi_value o;
    CHECK_NAPI(napi_create_object(env, &o));
    set_prop_num(env, o, "nCtxTrain", p_llama_model_n_ctx_train(m->model));
    set_prop_num(env, o, "nLayer", p_llama_model_n_layer(m->model));
    set_prop_num(env, o, "nEmbd", p_llama_model_n_embd(m->model));
    set_prop_num(env, o, "nHead", p_llama_model_n_head(m->model));
    set_prop_num(env, o, "nHeadKv", p_llama_model_n_head_kv(m->model));
    set_prop_num(env, o, "nVocab", p_llama_vocab_n_tokens(p_llama_model_get_vocab(m->model)));
    set_prop_num(env, o, "sizeBytes", (double)p_llama_model_size(m->model));
    // One plain KV cache (no sliding-window or recurrent part): what seqMove can copy across.
    napi_value plain;
    CHECK_NAPI(napi_get_boolean(env, p_llama_model_n_swa(m->model) == 0 && !p_llama_model_is_recurrent(m->model) && !p_llama_model_is_hybrid(m->model), &plain));
    napi_set_named_property(env, o, "plainKv", plain);
    char buf[256];
    p_llama_model_desc(m->model, buf, sizeof buf);
    set_prop_str(env, o, "desc", buf);
    if (p_llama_model_meta_val_str(m->model, "general.architecture", buf, sizeof buf) < 0) buf[0] = 0;
    set_prop_str(env, o, "arch", buf);
    return o;
}

static napi_value js_new_context(napi_env env, napi_callback_info info) {
    napi_value argv[9];
    int64_t n_ctx, n_batch, n_ubatch, n_seq_max, n_threads, kv_f16, flash, unified;
    if (!require_lib(env, "newContext") || !get_args(env, info, 9, argv, "newContext")) return NULL;
    Model *m = get_model(env, argv[0], "newContext");
    if (!m || !get_i64(env, argv[1], "newContext", 1, INT32_MAX, &n_ctx) || !get_i64(env, argv[2], "newContext", 1, INT32_MAX, &n_batch) ||
        !get_i64(env, argv[3], "newContext", 1, INT32_MAX, &n_ubatch) || !get_i64(env, argv[4], "newContext", 1, 256, &n_seq_max) ||
        !get_i64(env, argv[5], "newContext", 1, 1024, &n_threads) || !get_i64(env, argv[6], "newContext", 0, 1, &kv_f16) ||
        !get_i64(env, argv[7], "newContext", -1, 1, &flash) || !get_i64(env, argv[8], "newContext", 0, 1, &unified))
        return NULL;
    struct llama_context_params cp = p_llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_batch;
    cp.n_ubatch = (uint32_t)n_ubatch;
    cp.n_seq_max = (uint32_t)n_seq_max;
    cp.n_threads = cp.n_threads_batch = (int32_t)n_threads;
    cp.type_k = cp.type_v = kv_f16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
    cp.flash_attn_type = (enum llama_flash_attn_type)flash;
    // Unified: one KV buffer for all sequences, so a cell shared by several (seq_cp) is visible to
    // each; with one stream per sequence a copy across streams replaces the target's cells. Per
    // sequence: each attends over its own stream only (stage 0's independent chunks).
    cp.kv_unified = unified != 0;
    cp.no_perf = true;
    last_error[0] = 0;
    struct llama_context *ctx = p_llama_init_from_model(m->model, cp);
    if (!ctx) return throw_msg(env, "llama.cpp could not create a context: %s%s", last_error[0] ? last_error : "no reason given", "");
    Context *c = calloc(1, sizeof *c);
    c->ctx = ctx;
    c->m = m;
    c->n_vocab = p_llama_vocab_n_tokens(p_llama_model_get_vocab(m->model));
    m->contexts++;
    napi_value ext;
    CHECK_NAPI(napi_create_external(env, c, finalize_context, NULL, &ext));
    CHECK_NAPI(napi_create_reference(env, argv[0], 1, &c->model_ref));
    return ext;
}

/** One llama_decode; the caller keeps n within the context's n_batch. */
static napi_value js_decode(napi_env env, napi_callback_info info) {
    napi_value argv[7];
    int32_t *tokens, *pos, *seq;
    uint8_t *want;
    float *out;
    size_t lt, lp, ls, lw, lo;
    int64_t n;
    if (!require_lib(env, "decode") || !get_args(env, info, 7, argv, "decode")) return NULL;
    Context *c = get_context(env, argv[0], "decode");
    if (!c || !get_ta(env, argv[1], napi_int32_array, (void **)&tokens, &lt, "decode") ||
        !get_ta(env, argv[2], napi_int32_array, (void **)&pos, &lp, "decode") ||
        !get_ta(env, argv[3], napi_int32_array, (void **)&seq, &ls, "decode") ||
        !get_ta(env, argv[4], napi_uint8_array, (void **)&want, &lw, "decode") ||
        !get_i64(env, argv[5], "decode", 1, INT32_MAX, &n) ||
        !get_ta(env, argv[6], napi_float32_array, (void **)&out, &lo, "decode"))
        return NULL;
    if ((size_t)n > lt || (size_t)n > lp || (size_t)n > ls || (size_t)n > lw) return throw_msg(env, "decode: n exceeds a batch array%s%s", "", "");
    size_t n_want = 0;
    for (int64_t i = 0; i < n; i++) n_want += want[i] != 0;
    if (n_want * (size_t)c->n_vocab > lo) return throw_msg(env, "decode: out is smaller than the wanted logits%s%s", "", "");

    if (c->batch_cap < n) {
        if (c->batch_cap > 0) p_llama_batch_free(c->batch);
        c->batch = p_llama_batch_init((int32_t)n, 0, 1);
        c->batch_cap = (int32_t)n;
    }
    llama_batch b = c->batch;
    for (int64_t i = 0; i < n; i++) {
        b.token[i] = tokens[i];
        b.pos[i] = pos[i];
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = seq[i];
        b.logits[i] = want[i] != 0;
    }
    b.n_tokens = (int32_t)n;
    last_error[0] = 0;
    int32_t rc = p_llama_decode(c->ctx, b);
    if (rc == 0) {
        size_t row = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!want[i]) continue;
            const float *l = p_llama_get_logits_ith(c->ctx, (int32_t)i);
            if (!l) { rc = -100; break; }
            memcpy(out + row * (size_t)c->n_vocab, l, sizeof(float) * (size_t)c->n_vocab);
            row++;
        }
    }
    if (rc != 0) {
        char code[32];
        snprintf(code, sizeof code, "%d", rc);
        const char *why = rc == 1 ? "no KV cells left for the batch" : rc == -100 ? "no logits for a wanted token" : last_error[0] ? last_error : "llama_decode failed";
        return throw_msg(env, "llama.cpp decode failed (code %s): %s", code, why);
    }
    return NULL;
}

static napi_value js_seq_rm(napi_env env, napi_callback_info info) {
    napi_value argv[4];
    int64_t seq, p0, p1;
    if (!require_lib(env, "seqRm") || !get_args(env, info, 4, argv, "seqRm")) return NULL;
    Context *c = get_context(env, argv[0], "seqRm");
    if (!c || !get_i64(env, argv[1], "seqRm", -1, 255, &seq) || !get_i64(env, argv[2], "seqRm", -1, INT32_MAX, &p0) ||
        !get_i64(env, argv[3], "seqRm", -1, INT32_MAX, &p1))
        return NULL;
    bool ok = p_llama_memory_seq_rm(p_llama_get_memory(c->ctx), (llama_seq_id)seq, (llama_pos)p0, (llama_pos)p1);
    napi_value v;
    CHECK_NAPI(napi_get_boolean(env, ok, &v));
    return v;
}

static napi_value js_seq_cp(napi_env env, napi_callback_info info) {
    napi_value argv[5];
    int64_t src, dst, p0, p1;
    if (!require_lib(env, "seqCp") || !get_args(env, info, 5, argv, "seqCp")) return NULL;
    Context *c = get_context(env, argv[0], "seqCp");
    if (!c || !get_i64(env, argv[1], "seqCp", 0, 255, &src) || !get_i64(env, argv[2], "seqCp", 0, 255, &dst) ||
        !get_i64(env, argv[3], "seqCp", -1, INT32_MAX, &p0) || !get_i64(env, argv[4], "seqCp", -1, INT32_MAX, &p1))
        return NULL;
    p_llama_memory_seq_cp(p_llama_get_memory(c->ctx), (llama_seq_id)src, (llama_seq_id)dst, (llama_pos)p0, (llama_pos)p1);
    return NULL;
}

/** Copies sequence src's cells of `from` into sequence dst of `to` (same model and KV types). */
static napi_value js_seq_move(napi_env env, napi_callback_info info) {
    napi_value argv[4];
    int64_t src, dst;
    if (!require_lib(env, "seqMove") || !get_args(env, info, 4, argv, "seqMove")) return NULL;
    Context *from = get_context(env, argv[0], "seqMove");
    Context *to = from ? get_context(env, argv[1], "seqMove") : NULL;
    if (!to || !get_i64(env, argv[2], "seqMove", 0, 255, &src) || !get_i64(env, argv[3], "seqMove", 0, 255, &dst)) return NULL;
    size_t size = p_llama_state_seq_get_size(from->ctx, (llama_seq_id)src);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return throw_msg(env, "seqMove: out of memory for a sequence's state%s%s", "", "");
    last_error[0] = 0;
    size_t got = p_llama_state_seq_get_data(from->ctx, buf, size, (llama_seq_id)src);
    // The state is [u32 magic][i32 seq id] (llama-context.cpp state_seq_get_data), then the KV
    // cache's [u32 n_stream] and, per stream, [u32 n_cells] followed, for the one stream that holds
    // the sequence (stream = its id in a per-sequence context), by its cells and their K/V
    // (llama-kv-cache.cpp state_write). A unified context reads one stream: keep that section.
    const size_t H = 8;
    uint32_t n_stream = 0;
    size_t off = 0, len = got;
    if (got >= H + 4) memcpy(&n_stream, buf + H, 4);
    if (n_stream > 1) {
        size_t head = H + 4 + 4 * (size_t)src, tail = 4 * (size_t)(n_stream - 1 - src);
        int ok = (size_t)src < n_stream && got >= head + 4 + tail;
        for (uint32_t s = 0; ok && s < n_stream; s++) {
            if (s == src) continue;
            uint32_t zero;
            memcpy(&zero, buf + (s < src ? H + 4 + 4 * (size_t)s : got - 4 * (size_t)(n_stream - s)), 4);
            ok = zero == 0;
        }
        if (!ok) {
            free(buf);
            return throw_msg(env, "seqMove: the sequence's state is not one stream's (an unexpected KV layout)%s%s", "", "");
        }
        // [magic][seq][1][section]: the header moves up to just before the section.
        off = head - 4 - H;
        memmove(buf + off, buf, H);
        uint32_t one = 1;
        memcpy(buf + off + H, &one, 4);
        len = got - off - tail;
    }
    size_t put = got ? p_llama_state_seq_set_data(to->ctx, buf + off, len, (llama_seq_id)dst) : 0;
    free(buf);
    if (!put) return throw_msg(env, "llama.cpp could not copy a sequence between contexts: %s%s", last_error[0] ? last_error : "no room or a mismatched state", "");
    napi_value v;
    CHECK_NAPI(napi_create_double(env, (double)got, &v));
    return v;
}

/** The largest (`max`) or smallest position sequence `seq` holds, or -1. */
static napi_value seq_pos(napi_env env, napi_callback_info info, int max, const char *fn) {
    napi_value argv[2];
    int64_t seq;
    if (!require_lib(env, fn) || !get_args(env, info, 2, argv, fn)) return NULL;
    Context *c = get_context(env, argv[0], fn);
    if (!c || !get_i64(env, argv[1], fn, 0, 255, &seq)) return NULL;
    llama_memory_t mem = p_llama_get_memory(c->ctx);
    napi_value v;
    CHECK_NAPI(napi_create_int32(env, max ? p_llama_memory_seq_pos_max(mem, (llama_seq_id)seq) : p_llama_memory_seq_pos_min(mem, (llama_seq_id)seq), &v));
    return v;
}

static napi_value js_seq_pos_max(napi_env env, napi_callback_info info) { return seq_pos(env, info, 1, "seqPosMax"); }
static napi_value js_seq_pos_min(napi_env env, napi_callback_info info) { return seq_pos(env, info, 0, "seqPosMin"); }

static napi_value js_clear(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    if (!require_lib(env, "clear") || !get_args(env, info, 1, argv, "clear")) return NULL;
    Context *c = get_context(env, argv[0], "clear");
    if (c) p_llama_memory_clear(p_llama_get_memory(c->ctx), true);
    return NULL;
}

static napi_value js_free_context(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    Context *c = NULL;
    if (!get_args(env, info, 1, argv, "freeContext")) return NULL;
    if (napi_get_value_external(env, argv[0], (void **)&c) != napi_ok || !c) return throw_msg(env, "freeContext: not a context handle%s%s", "", "");
    context_release(env, c);
    return NULL;
}

static napi_value js_free_model(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    Model *m = NULL;
    if (!get_args(env, info, 1, argv, "freeModel")) return NULL;
    if (napi_get_value_external(env, argv[0], (void **)&m) != napi_ok || !m) return throw_msg(env, "freeModel: not a model handle%s%s", "", "");
    m->released = 1; // the finalizer frees the struct; contexts still open keep the weights
    model_release(m);
    return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
    napi_property_descriptor props[] = {
        {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
        {"lastError", NULL, js_last_error, NULL, NULL, NULL, napi_default, NULL},
        {"loadModel", NULL, js_load_model, NULL, NULL, NULL, napi_default, NULL},
        {"modelInfo", NULL, js_model_info, NULL, NULL, NULL, napi_default, NULL},
        {"newContext", NULL, js_new_context, NULL, NULL, NULL, napi_default, NULL},
        {"decode", NULL, js_decode, NULL, NULL, NULL, napi_default, NULL},
        {"seqRm", NULL, js_seq_rm, NULL, NULL, NULL, napi_default, NULL},
        {"seqCp", NULL, js_seq_cp, NULL, NULL, NULL, napi_default, NULL},
        {"seqPosMax", NULL, js_seq_pos_max, NULL, NULL, NULL, napi_default, NULL},
        {"seqPosMin", NULL, js_seq_pos_min, NULL, NULL, NULL, napi_default, NULL},
        {"seqMove", NULL, js_seq_move, NULL, NULL, NULL, napi_default, NULL},
        {"clear", NULL, js_clear, NULL, NULL, NULL, napi_default, NULL},
        {"freeContext", NULL, js_free_context, NULL, NULL, NULL, napi_default, NULL},
        {"freeModel", NULL, js_free_model, NULL, NULL, NULL, napi_default, NULL},
    };
    napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
