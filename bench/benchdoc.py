"""Helpers shared by the scripts that write generated blocks of docs/BENCHMARKS.md
(bench/run.py, bench/targets.py): the machine line, size labels, and replacing the text
between a block's two marker lines."""
import os
import platform
import subprocess


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    model = sh("lscpu | sed -n 's/^Model name: *//p' | head -1") or platform.processor()
    mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")
    os_name = sh(". /etc/os-release && echo \"$PRETTY_NAME\"")
    ucx = sh("pkg-config --modversion ucx") or "not found"
    return (f"{os.cpu_count()} CPUs ({model}), {mem}, {os_name}, kernel {platform.release()}, "
            f"UCX {ucx}")


def size_label(n):
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


def replace_block(path, begin, end, generated, insert_after=None):
    """Put `generated` (which starts with `begin` and ends with `end`) in place of the text
    between the two markers of the file at `path`. Where the file has no such block it goes
    after the line `insert_after` when given and present, else before the first `## `
    heading, else at the end."""
    with open(path) as f:
        doc = f.read()
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        doc = head + generated + rest.split(end, 1)[1]
    elif insert_after and insert_after in doc:
        i = doc.index(insert_after) + len(insert_after)
        doc = doc[:i] + "\n\n" + generated + doc[i:]
    else:
        i = doc.find("\n## ")
        doc = (doc[:i] + "\n\n" + generated + "\n" + doc[i:]) if i >= 0 else doc + "\n" + generated
    with open(path, "w") as f:
        f.write(doc)
