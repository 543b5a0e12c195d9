# `cmake --install`: the standard layout. The binary finds share/landlord/ relative to its own
# bin/ (src/sim/data_files.cc), so an install under any prefix works from any directory.
#   bin/landlord
#   share/landlord/             the default traces and their attribution (data/README.md)
#   share/doc/landlord/         README, docs, the example configs
install(TARGETS landlord RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/data/ DESTINATION ${CMAKE_INSTALL_DATADIR}/landlord)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})
