{
  "targets": [
    {
      "target_name": "ferry_native",
      "sources": ["src/native/ferry.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
