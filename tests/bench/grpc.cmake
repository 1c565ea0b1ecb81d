# grpc_load: load generator for the real daemon's CSR service and for cfssl, and the raw crypto
# reference (scripts/bench-grpc). stampede: the pod-start stampede client (scripts/bench-stampede).
find_package(OpenSSL REQUIRED)
find_package(absl CONFIG REQUIRED)
add_executable(grpc_load ${CMAKE_CURRENT_LIST_DIR}/grpc_load.cc)
target_compile_options(grpc_load PRIVATE ${ISTIOCA_WARNINGS})
target_link_libraries(grpc_load PRIVATE istioca_proto istioca_pki OpenSSL::Crypto
                                        nlohmann_json::nlohmann_json absl::synchronization)
add_executable(stampede ${CMAKE_CURRENT_LIST_DIR}/stampede.cc)
target_compile_options(stampede PRIVATE ${ISTIOCA_WARNINGS})
target_link_libraries(stampede PRIVATE istioca_proto istioca_pki)
