# layers.cmake - one static library per folder, and the dependency rule
# between them enforced by the build.
#
# nftraft_layer(<folder> SOURCES <files...> USES <layers...> PKGS <targets...>)
#   defines nftraft_<folder> from the listed sources (no globbing). USES
#   names every layer the folder may include and link (the full set, not
#   just the direct ones); PKGS are pkg-config imported targets.
#   The sources compile against an include root that contains only
#   <folder> and its USES (symbolic links under the build tree), so an
#   #include of a higher layer fails to compile.
# nftraft_check_layers()
#   after all layers are defined: fails the configure step when a layer's
#   link libraries name a nftraft_ library outside its USES.

set_property(GLOBAL PROPERTY NFTRAFT_LAYERS "")

function(nftraft_layer folder)
  cmake_parse_arguments(L "" "" "SOURCES;USES;PKGS" ${ARGN})
  set(lib nftraft_${folder})
  add_library(${lib} STATIC ${L_SOURCES})
  set(root ${CMAKE_BINARY_DIR}/layers/${folder})
  file(REMOVE_RECURSE ${root})
  file(MAKE_DIRECTORY ${root})
  foreach(dir ${folder} ${L_USES})
    file(CREATE_LINK ${CMAKE_SOURCE_DIR}/${dir} ${root}/${dir} SYMBOLIC)
  endforeach()
  target_include_directories(${lib} PRIVATE ${root})
  set(deps)
  foreach(dir ${L_USES})
    list(APPEND deps nftraft_${dir})
  endforeach()
  target_link_libraries(${lib} PUBLIC ${deps} ${L_PKGS})
  set_property(TARGET ${lib} PROPERTY NFTRAFT_USES ${L_USES})
  set_property(GLOBAL APPEND PROPERTY NFTRAFT_LAYERS ${folder})
endfunction()

function(nftraft_check_layers)
  get_property(layers GLOBAL PROPERTY NFTRAFT_LAYERS)
  foreach(folder ${layers})
    get_target_property(uses nftraft_${folder} NFTRAFT_USES)
    get_target_property(links nftraft_${folder} LINK_LIBRARIES)
    foreach(l ${links})
      if(l MATCHES "^nftraft_(.*)$")
        list(FIND uses ${CMAKE_MATCH_1} at)
        if(at EQUAL -1)
          message(FATAL_ERROR "layer rule: nftraft_${folder} links ${l}, "
            "but ${folder}/ may only use: ${uses} (see cmake/layers.cmake)")
        endif()
      endif()
    endforeach()
  endforeach()
endfunction()
