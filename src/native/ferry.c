/*
 * ferry's native addon: thin wrappers of what Node cannot do itself.
 * No logic lives here: every decision is made in TypeScript (src/kernel/).
 *
 *   syscall(nr, ...args)         raw system call; Buffers pass their data pointer;
 *                                returns the raw result as a BigInt (-errno on error)
 *   addressOf(buffer)            the data pointer of a Buffer, to build structs with pointers
 *   spawnStub(setTid, flags)     clone3 (with set_tid) a child that asks to be traced and
 *                                stops itself; it runs raw syscalls only
 *   pollStart(fd, events, cb)    watch an fd with libuv (uv_poll), cb(status, events)
 *   pollStop(handle)             stop watching
 *   memoryView(address, length)  an ArrayBuffer over memory ferry mapped itself (mmap through
 *                                syscall()), so TypeScript can read a mapped file without a copy
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>


#define CHECK(call)                                                         \
  do {                                                                      \
    if ((call) != napi_ok) {                                                \
      napi_throw_error(env, "FERRY_NATIVE", "native call failed: " #call); \
      return NULL;                                                          \
    }                                                                       \
  } while (0)

static int to_word(napi_env env, napi_value v, uint64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  switch (t) {
    case napi_undefined:
    case napi_null:
      *out = 0;
      return 0;
    case napi_boolean: {
      bool b;
      napi_get_value_bool(env, v, &b);
      *out = b;
      return 0;
    }
    case napi_number: {
      int64_t i;
      napi_get_value_int64(env, v, &i);
      *out = (uint64_t)i;
      return 0;
    }
    case napi_bigint: {
      int64_t i;
      bool lossless;
      napi_get_value_bigint_int64(env, v, &i, &lossless);
      if (!lossless) {
        uint64_t u;
        napi_get_value_bigint_uint64(env, v, &u, &lossless);
        *out = u;
      } else {
        *out = (uint64_t)i;
      }
      return 0;
    }
    case napi_object: {
      bool is_buf = false;
      napi_is_buffer(env, v, &is_buf);
      if (is_buf) {
        void *data;
        size_t len;
        napi_get_buffer_info(env, v, &data, &len);
        *out = (uint64_t)(uintptr_t)data;
        return 0;
      }
      bool is_ta = false;
      napi_is_typedarray(env, v, &is_ta);
      if (is_ta) {
        napi_typedarray_type tt;
        size_t len, off;
        void *data;
        napi_value ab;
        napi_get_typedarray_info(env, v, &tt, &len, &data, &ab, &off);
        *out = (uint64_t)(uintptr_t)data;
        return 0;
      }
      return -1;
    }
    default:
      return -1;
  }
}

static napi_value js_syscall(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, "FERRY_NATIVE", "syscall(nr, ...args)");
    return NULL;
  }
  uint64_t w[7] = {0};
  for (size_t i = 0; i < argc; i++) {
    if (to_word(env, argv[i], &w[i]) != 0) {
      napi_throw_type_error(env, "FERRY_NATIVE", "syscall argument must be a number, bigint, Buffer or null");
      return NULL;
    }
  }
  errno = 0;
  long r = syscall((long)w[0], w[1], w[2], w[3], w[4], w[5], w[6]);
  if (r == -1 && errno != 0) r = -errno;
  napi_value out;
  CHECK(napi_create_bigint_int64(env, r, &out));
  return out;
}

static napi_value js_address_of(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint64_t w;
  if (argc < 1 || to_word(env, argv[0], &w) != 0) {
    napi_throw_type_error(env, "FERRY_NATIVE", "addressOf(buffer)");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_bigint_uint64(env, w, &out));
  return out;
}

struct clone_args_v2 {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
      set_tid_size, cgroup;
};

/* The child of spawnStub: it is a copy of this Node process with one thread. It must not touch
 * libc state (locks may be held by threads that do not exist in it): raw syscalls only. */
static void __attribute__((noreturn)) stub_child(void) {
  syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0);
  syscall(SYS_kill, syscall(SYS_getpid), SIGSTOP);
  for (;;) syscall(SYS_pause);
}

static napi_value js_spawn_stub(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  pid_t tids[32];
  uint32_t ntids = 0;
  if (argc >= 1) {
    bool is_arr = false;
    napi_is_array(env, argv[0], &is_arr);
    if (is_arr) {
      CHECK(napi_get_array_length(env, argv[0], &ntids));
      if (ntids > 32) ntids = 32;
      for (uint32_t i = 0; i < ntids; i++) {
        napi_value e;
        int32_t v;
        CHECK(napi_get_element(env, argv[0], i, &e));
        CHECK(napi_get_value_int32(env, e, &v));
        tids[i] = v;
      }
    }
  }
  uint64_t flags = 0;
  if (argc >= 2) to_word(env, argv[1], &flags);
  struct clone_args_v2 ca;
  memset(&ca, 0, sizeof ca);
  ca.flags = flags;
  ca.exit_signal = SIGCHLD;
  if (ntids > 0) {
    ca.set_tid = (uint64_t)(uintptr_t)tids;
    ca.set_tid_size = ntids;
  }
  long r = syscall(SYS_clone3, &ca, sizeof ca);
  if (r == 0) stub_child();
  if (r < 0) r = -errno;
  napi_value out;
  CHECK(napi_create_int64(env, r, &out));
  return out;
}

typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  int closing;
} poll_ctx;

static void poll_closed(uv_handle_t *h) {
  poll_ctx *ctx = (poll_ctx *)h->data;
  napi_delete_reference(ctx->env, ctx->callback);
  free(ctx);
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  poll_ctx *ctx = (poll_ctx *)h->data;
  if (ctx->closing) return;
  napi_env env = ctx->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, global, args[2], result;
  napi_get_reference_value(env, ctx->callback, &cb);
  napi_get_global(env, &global);
  napi_create_int32(env, status, &args[0]);
  napi_create_int32(env, events, &args[1]);
  napi_status st = napi_call_function(env, global, cb, 2, args, &result);
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

static napi_value js_poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, events;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_int32(env, argv[1], &events));
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  poll_ctx *ctx = calloc(1, sizeof *ctx);
  ctx->env = env;
  CHECK(napi_create_reference(env, argv[2], 1, &ctx->callback));
  int r = uv_poll_init(loop, &ctx->handle, fd);
  if (r == 0) {
    ctx->handle.data = ctx;
    r = uv_poll_start(&ctx->handle, events, poll_cb);
    if (r != 0) {
      ctx->closing = 1;
      uv_close((uv_handle_t *)&ctx->handle, poll_closed);
    }
  } else {
    napi_delete_reference(env, ctx->callback);
    free(ctx);
  }
  if (r != 0) {
    napi_throw_error(env, "FERRY_POLL", uv_strerror(r));
    return NULL;
  }
  napi_value ext;
  CHECK(napi_create_external(env, ctx, NULL, NULL, &ext));
  return ext;
}

static napi_value js_poll_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  poll_ctx *ctx;
  CHECK(napi_get_value_external(env, argv[0], (void **)&ctx));
  if (!ctx->closing) {
    ctx->closing = 1;
    uv_poll_stop(&ctx->handle);
    uv_close((uv_handle_t *)&ctx->handle, poll_closed);
  }
  return NULL;
}

/* memoryView(address, length): the bytes of a mapping ferry made (mmap via syscall) as an
 * ArrayBuffer. It does not own the memory: whoever mapped it unmaps it, after the last use. */
static napi_value js_memory_view(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint64_t address, length;
  if (argc < 2 || to_word(env, argv[0], &address) != 0 || to_word(env, argv[1], &length) != 0) {
    napi_throw_type_error(env, "FERRY_NATIVE", "memoryView(address, length)");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_external_arraybuffer(env, (void *)(uintptr_t)address, (size_t)length, NULL, NULL, &out));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"syscall", NULL, js_syscall, NULL, NULL, NULL, napi_default, NULL},
      {"addressOf", NULL, js_address_of, NULL, NULL, NULL, napi_default, NULL},
      {"spawnStub", NULL, js_spawn_stub, NULL, NULL, NULL, napi_default, NULL},
      {"pollStart", NULL, js_poll_start, NULL, NULL, NULL, napi_default, NULL},
      {"pollStop", NULL, js_poll_stop, NULL, NULL, NULL, napi_default, NULL},
      {"memoryView", NULL, js_memory_view, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
