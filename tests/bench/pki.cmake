# pki_bench: the pki library against the raw OpenSSL operations it wraps (scripts/bench-pki).
add_executable(pki_bench ${CMAKE_CURRENT_LIST_DIR}/pki_bench.cc)
target_compile_options(pki_bench PRIVATE ${ISTIOCA_WARNINGS})
target_link_libraries(pki_bench PRIVATE istioca_pki istioca_ca_core benchmark::benchmark)
