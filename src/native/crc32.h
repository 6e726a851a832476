/* ferry's page checksum (see crc32.c) */
#pragma once
#include <node_api.h>

void crc32_init(void);
napi_value js_crc32(napi_env env, napi_callback_info info);
napi_value js_crc32_accelerated(napi_env env, napi_callback_info info);
