/*
 * query_mem.cpp - ask the POSIX backend about files (reference query_mem test's shape): one that
 * exists (its size comes back), one that does not (no value).
 *
 * Build against an installed copy:  c++ -std=c++20 query_mem.cpp $(pkg-config --cflags --libs nixl-cpp)
 * Run with NIXL_PLUGIN_DIR naming the directory of libplugin_POSIX.so if it is not the default.
 */
#include "nixl.h"
#include "nixl_descriptors.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

int main()
{
    char dir[] = "/tmp/nixl_query_memXXXXXX";
    if (!mkdtemp(dir)) {
        std::perror("mkdtemp");
        return EXIT_FAILURE;
    }
    const std::string present = std::string(dir) + "/present", missing = std::string(dir) + "/missing";
    std::ofstream(present) << std::string(1234, 'x');

    nixlAgentConfig cfg;
    nixlAgent agent("test_agent", cfg);
    nixlBackendH *posix = nullptr;
    nixl_status_t st = agent.createBackend("POSIX", {}, posix);
    if (st != NIXL_SUCCESS) {
        std::cerr << "createBackend POSIX: " << nixlEnumStrings::statusStr(st) << '\n';
        return EXIT_FAILURE;
    }
    nixlDescList<nixlBlobDesc> descs(FILE_SEG);
    descs.addDesc(nixlBlobDesc(0, 0, 0, present));
    descs.addDesc(nixlBlobDesc(0, 0, 0, missing));
    std::vector<nixl_query_resp_t> resp;
    nixl_opt_args_t extra_params;
    extra_params.backends = {posix};
    st = agent.queryMem(descs, resp, &extra_params);
    int rc = EXIT_SUCCESS;
    if (st != NIXL_SUCCESS || resp.size() != static_cast<size_t>(descs.descCount())) {
        std::cerr << "queryMem: " << nixlEnumStrings::statusStr(st) << '\n';
        rc = EXIT_FAILURE;
    } else {
        for (int i = 0; i < descs.descCount(); i++)
            std::cout << descs[i].metaInfo << ": "
                      << (resp[i].has_value() ? "size " + resp[i].value()["size"] : "no value") << '\n';
        if (!resp[0].has_value() || resp[0].value().find("size") == resp[0].value().end() ||
            resp[0].value()["size"] != "1234" || resp[1].has_value()) {
            std::cerr << "query_mem: unexpected answer\n";
            rc = EXIT_FAILURE;
        }
    }
    std::remove(present.c_str());
    rmdir(dir);
    if (rc == EXIT_SUCCESS)
        std::cout << "query_mem: ok\n";
    return rc;
}
