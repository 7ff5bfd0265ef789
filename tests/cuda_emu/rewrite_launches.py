"""Rewrites each kernel launch of a .cu file for the CUDA emulation (test code).

    name<<<grid, block[, shared[, stream]]>>>(args)
becomes
    sdagd_emu::make_launcher("name", name, grid, block[, shared[, stream]])(args)

which checks and queues the launch (tests/cuda_emu/include/cuda_runtime.h). Lines are kept as
they were (the replacement never adds or removes a newline), and a #line directive names the
original file, so compiler messages point into cuda/backend_cuda.cu.

    python rewrite_launches.py IN.cu OUT.cpp
"""
import re
import sys

LAUNCH = re.compile(r"\b([A-Za-z_]\w*)\s*<<<")


def rewrite(text: str) -> str:
    out, pos = [], 0
    for match in LAUNCH.finditer(text):
        if match.start() < pos:
            continue
        end = text.find(">>>", match.end())
        if end < 0:
            raise SystemExit(f"rewrite_launches: <<< without >>> after {match.group(1)!r}")
        config = text[match.end():end]
        if "<<<" in config:
            raise SystemExit(f"rewrite_launches: nested <<< in the launch of {match.group(1)!r}")
        name = match.group(1)
        out.append(text[pos:match.start()])
        out.append(f'sdagd_emu::make_launcher("{name}", {name}, {config})')
        pos = end + 3
    out.append(text[pos:])
    result = "".join(out)
    if "<<<" in result or ">>>" in result:
        raise SystemExit("rewrite_launches: a launch was left that this script does not understand")
    return result


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as f:
        text = f.read()
    with open(target, "w", encoding="utf-8") as f:
        f.write(f'#line 1 "{source}"\n' + rewrite(text))


if __name__ == "__main__":
    main()
