# The dependency rule between kforge's components (docs/architecture.md): each may use only the
# components listed for it, all of them below it. The inference core ships without the harness
# and the search, so it names neither evaluator nor agent. Used by the link check in the top
# CMakeLists.txt and by check_includes.cmake (ctest: layers.includes).
set(KFORGE_COMPONENTS common compiler_bridge kernels_db task evaluator agent inference web cli)
set(KFORGE_ALLOWED_common "")
set(KFORGE_ALLOWED_compiler_bridge common)
set(KFORGE_ALLOWED_kernels_db common)
set(KFORGE_ALLOWED_task common compiler_bridge kernels_db)
set(KFORGE_ALLOWED_evaluator common compiler_bridge kernels_db task)
set(KFORGE_ALLOWED_agent common compiler_bridge kernels_db task evaluator)
set(KFORGE_ALLOWED_inference common compiler_bridge kernels_db task)
set(KFORGE_ALLOWED_web common kernels_db agent)  # the pages of kforge serve and report
set(KFORGE_ALLOWED_cli common compiler_bridge kernels_db task evaluator agent inference web)

# Fails the configure step when a component's library links a kforge library it may not use.
function(kforge_check_links)
  foreach(component ${KFORGE_COMPONENTS})
    if(NOT TARGET kforge_${component})
      continue()
    endif()
    get_target_property(links kforge_${component} LINK_LIBRARIES)
    get_target_property(interface kforge_${component} INTERFACE_LINK_LIBRARIES)
    foreach(lib IN LISTS links interface)
      if(lib MATCHES "^kforge_(.+)$" AND NOT CMAKE_MATCH_1 IN_LIST KFORGE_ALLOWED_${component})
        message(FATAL_ERROR "kforge_${component} links ${lib}: ${component} may use only "
                            "'${KFORGE_ALLOWED_${component}}' (cmake/layers.cmake)")
      endif()
    endforeach()
  endforeach()
endfunction()
