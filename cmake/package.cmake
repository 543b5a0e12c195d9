# `make package`: a Debian package (CPack DEB) of the install layout (cmake/install.cmake) plus
# what a server needs: the systemd unit, the config as a conffile, the `landlord` system user
# (postinst), a man page made from `--help` by help2man, and dependencies found from the shared
# libraries the binary links (dpkg-shlibdeps). The files under /etc and the unit are a component
# of their own that only the package installs: `cmake --install --prefix DIR` writes nothing
# outside DIR.
set(LL_PKG ${CMAKE_SOURCE_DIR}/packaging)

# The man page: help2man runs the built binary's --help and --version.
find_program(HELP2MAN help2man)
if(HELP2MAN)
  set(LL_MAN ${CMAKE_BINARY_DIR}/landlord.1)
  add_custom_command(OUTPUT ${LL_MAN}.gz
    COMMAND ${HELP2MAN} --no-info --section=1 --name=sell\ the\ idle\ hours\ of\ a\ GPU\ fleet
            --include=${LL_PKG}/landlord.h2m --output=${LL_MAN} $<TARGET_FILE:landlord>
    COMMAND gzip -9nf ${LL_MAN}
    DEPENDS landlord ${LL_PKG}/landlord.h2m VERBATIM)
  add_custom_target(landlord_man ALL DEPENDS ${LL_MAN}.gz)
  install(FILES ${LL_MAN}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(STATUS "help2man not found: no man page (scripts/deps.sh installs it)")
endif()

# Debian's doc files: the changelog (gzipped, no timestamp) and the copyright.
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/changelog.gz
  COMMAND gzip -9nc ${LL_PKG}/changelog > ${CMAKE_BINARY_DIR}/changelog.gz
  DEPENDS ${LL_PKG}/changelog VERBATIM)
add_custom_target(landlord_changelog ALL DEPENDS ${CMAKE_BINARY_DIR}/changelog.gz)
install(FILES ${CMAKE_BINARY_DIR}/changelog.gz ${LL_PKG}/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR}
  COMPONENT system EXCLUDE_FROM_ALL)
install(FILES ${LL_PKG}/landlord.toml DESTINATION /etc/landlord COMPONENT system EXCLUDE_FROM_ALL)
install(FILES ${LL_PKG}/landlord.service DESTINATION /lib/systemd/system COMPONENT system EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME landlord)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "The Landlord authors")
set(CPACK_PACKAGE_CONTACT "Landlord maintainers <landlord@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "sells the idle hours of a GPU fleet without getting in the owner's way")
set(CPACK_PACKAGE_DESCRIPTION
  "Landlord rents out the valleys of a GPU fleet's own demand to outside
tenants, as spot and reserved bare-metal leases with reclaim notices and as
an OpenAI-compatible model API, metered to a durable ledger. This package
holds the landlord binary (the control plane `landlord serve`, the simulator
`landlord sim`, the CLI), the systemd service that runs the control plane as
the landlord user, and the default demo traces.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)  # xz takes minutes on 2 cores for a few MB saved
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_COMPONENTS_ALL Unspecified system)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "bubblewrap")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${LL_PKG}/conffiles ${LL_PKG}/postinst ${LL_PKG}/prerm ${LL_PKG}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
