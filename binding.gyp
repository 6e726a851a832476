{
  "targets": [
    {
      "target_name": "ferry_native",
      "sources": ["src/native/ferry.c", "src/native/crc32.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
