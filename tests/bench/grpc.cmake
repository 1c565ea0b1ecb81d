# grpc_load: load generator for the gRPC CSR service and for cfssl (scripts/bench-grpc).
find_package(PkgConfig REQUIRED)
pkg_check_modules(GRPC_BENCH_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
add_executable(grpc_load ${CMAKE_CURRENT_LIST_DIR}/grpc_load.cc)
target_compile_options(grpc_load PRIVATE ${ISTIOCA_WARNINGS})
target_link_libraries(grpc_load PRIVATE istioca_ca PkgConfig::GRPC_BENCH_HTTPLIB)
