#!/usr/bin/env python3
"""The layering of the tree, checked two ways.

1. Every quoted #include of the library, its plugins, tools, Python extension, benchmarks and
   examples must name a header of the including file's own layer or of a layer it may use
   (docs/architecture.md): util <- md, gpu, telemetry <- core <- plugins (through include/nixl_plugin.h) <-
   tools, python. The C++ API (cpp/) sees include/ and its own cpp/include only; its headers
   keep the reference's names and paths (utils/serdes/serdes.h), so it is checked on its own.
2. The build itself refuses an upward include: a probe that includes a core header, compiled
   with the include flags the md layer is built with, must fail; the same probe compiled with
   core's flags must succeed (so the check cannot pass by breaking the compiler call).

Usage: check_layers.py SRC_ROOT CC [--md-flags ... --] [--core-flags ... --]
"""
import os
import re
import subprocess
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

# Folder of the including file (first match wins) -> folders whose headers it may include.
RULES = [
    ('src/util', ['include', 'src/util']),
    ('src/md', ['include', 'src/util', 'src/md']),
    # GPU memory: beside md, above util; plugins reach it only through nixl_host_t.gpu.
    ('src/gpu', ['include', 'src/util', 'src/gpu']),
    # Telemetry (events, staging queue, exporters): beside md and gpu, above util.
    ('src/telemetry', ['include', 'src/util', 'src/telemetry']),
    ('src/core', ['include', 'src/util', 'src/md', 'src/gpu', 'src/telemetry', 'src/core']),
    # The table of built-in plugins names each built-in plugin's public header.
    ('plugins/builtin.c', ['include', 'plugins/shm']),
    # AZURE_BLOB is the object-store engine of plugins/obj with another protocol.
    ('plugins/azure_blob/', ['include', 'src/util', 'plugins/obj', '<own>']),
    ('plugins/', ['include', 'src/util', '<own>']),
    # nixlbench links the TOML reader (util) and the etcd HTTP layer (md) statically.
    ('tools/nixlbench', ['include', 'src/util', 'src/md', '<own>']),
    ('tools/', ['include', '<own>']),
    # The extension links nixl_util (stateless building blocks: hash map, array, buffer).
    ('python/src', ['include', 'src/util', '<own>']),
    ('bench/', ['include', 'bench']),
    ('examples/', ['include', '<own>']),
]
SCANNED = ['src', 'plugins', 'tools', 'python/src', 'bench', 'examples']


def headers_by_name(root):
    found = {}
    for top in ['include', 'src', 'plugins', 'tools', 'python/src', 'bench', 'examples']:
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                # a header meson generates (configure_file) counts where its template lives
                name = f[:-3] if f.endswith('.h.in') else f
                if name.endswith('.h'):
                    found.setdefault(name, []).append(os.path.relpath(os.path.join(d, f), root))
    return found


def allowed_for(rel):
    for prefix, allowed in RULES:
        if rel.startswith(prefix):
            own = os.path.dirname(rel)
            return [own if a == '<own>' else a for a in allowed]
    return None


def check_includes(root):
    headers = headers_by_name(root)
    problems = []
    count = 0
    for top in SCANNED:
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if not f.endswith(('.c', '.h')):
                    continue
                rel = os.path.relpath(os.path.join(d, f), root)
                allowed = allowed_for(rel)
                if allowed is None:
                    problems.append(f'{rel}: no layer rule covers this file')
                    continue
                with open(os.path.join(root, rel), encoding='utf-8') as fh:
                    text = fh.read()
                for name in INCLUDE.findall(text):
                    count += 1
                    if '/' in name:
                        problems.append(f'{rel}: #include "{name}": name the header alone; '
                                        'the include path of the layer decides what is visible')
                        continue
                    where = headers.get(name, [])
                    if not where:
                        problems.append(f'{rel}: #include "{name}": no such header in the tree')
                        continue
                    if len(where) > 1:
                        problems.append(f'{rel}: #include "{name}": the name is not unique '
                                        f'({", ".join(where)})')
                        continue
                    home = os.path.dirname(where[0])
                    if home not in allowed:
                        problems.append(f'{rel}: #include "{name}" climbs to {home} '
                                        f'(this file may use {", ".join(allowed)})')
    return count, problems


CPP_INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]([^>"]+)[>"]', re.M)


def check_cpp_layer(root):
    """cpp/: every include that names a project header resolves to cpp/include or include/."""
    project = set()
    for top in ['src', 'plugins', 'tools', 'python/src', 'bench', 'examples']:
        for d, _, files in os.walk(os.path.join(root, top)):
            project.update(f for f in files if f.endswith('.h'))
    problems, count = [], 0
    base = os.path.join(root, 'cpp')
    for d, _, files in os.walk(base):
        for f in sorted(files):
            if not f.endswith(('.h', '.cpp')):
                continue
            rel = os.path.relpath(os.path.join(d, f), root)
            with open(os.path.join(root, rel), encoding='utf-8') as fh:
                text = fh.read()
            for name in CPP_INCLUDE.findall(text):
                if any(os.path.isfile(os.path.join(root, where, name))
                       for where in ('cpp/include', 'include')):
                    count += 1
                elif os.path.basename(name) in project:
                    count += 1
                    problems.append(f'{rel}: #include "{name}": the C++ layer sees include/ and '
                                    'cpp/include only')
    return count, problems


def compiles(cc, flags, source):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'probe.c')
        with open(path, 'w') as fh:
            fh.write(source)
        r = subprocess.run([cc, '-fsyntax-only', '-std=c11', '-D_GNU_SOURCE'] + flags + [path],
                           capture_output=True, text=True)
        return r.returncode == 0, r.stderr


def take(args, flag):
    if flag not in args:
        return []
    i = args.index(flag)
    j = args.index('--', i)
    return args[i + 1:j]


def main():
    root, cc = sys.argv[1], sys.argv[2]
    rest = sys.argv[3:]
    md_flags, core_flags = take(rest, '--md-flags'), take(rest, '--core-flags')
    failed = False

    count, problems = check_includes(root)
    cpp_count, cpp_problems = check_cpp_layer(root)
    count += cpp_count
    problems += cpp_problems
    for p in problems:
        print('layer violation:', p)
    failed |= bool(problems)
    print(f'{count} includes checked, {len(problems)} violations')

    if md_flags and core_flags:
        probe = '#include "agent_impl.h"\nint probe(void);\nint probe(void) { return 0; }\n'
        ok, err = compiles(cc, md_flags, probe)
        if ok:
            print('FAIL: a core header compiled with the md layer\'s include flags')
            failed = True
        else:
            print('ok: the md layer cannot include a core header:',
                  (err.strip().splitlines() or ['?'])[0])
        ok, err = compiles(cc, core_flags, probe)
        if not ok:
            print('FAIL: the probe does not compile with the core\'s own flags:\n' + err)
            failed = True
        else:
            print('ok: the same probe compiles in the core layer')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
