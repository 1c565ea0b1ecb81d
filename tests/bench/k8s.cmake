# k8s_bench: istio-ca serve against the in-process fake API server, 10,000 SAs (scripts/bench-k8s).
add_executable(k8s_bench ${CMAKE_CURRENT_LIST_DIR}/k8s_bench.cc)
target_compile_options(k8s_bench PRIVATE ${ISTIOCA_WARNINGS})
target_link_libraries(k8s_bench PRIVATE istioca_fakeapi istioca_k8s istioca_pki CLI11::CLI11)
add_dependencies(k8s_bench istio-ca)
