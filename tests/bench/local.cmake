# local_bench: 10,000 service accounts in local-directory mode, then a root change (scripts/bench-local).
add_executable(local_bench ${CMAKE_CURRENT_LIST_DIR}/local_bench.cc)
target_compile_options(local_bench PRIVATE ${ISTIOCA_WARNINGS})
target_link_libraries(local_bench PRIVATE istioca_ca)
