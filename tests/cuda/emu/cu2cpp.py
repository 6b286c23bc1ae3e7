#!/usr/bin/env python3
"""Rewrite a .cu file for the CPU emulation (cuda_emu.h): kernel launches
`k<<<cfg>>>(args);` become `emu_launch((const void *)k, [=]() { k(args); }, cfg);`
and the dynamic shared array becomes the emulator's per-block buffer."""
import re
import sys

src = open(sys.argv[1]).read()
src = src.replace("extern __shared__ float smem[];", "float *smem = (float *)emu_smem();")
out, i = [], 0
pat = re.compile(r"([A-Za-z_][A-Za-z_0-9]*(?:<[^<>;]*>)?)\s*<<<")
while True:
    m = pat.search(src, i)
    if not m:
        out.append(src[i:])
        break
    name = m.group(1)
    cfg_end = src.index(">>>", m.end())
    cfg = src[m.end():cfg_end]
    j = src.index("(", cfg_end)
    depth, k = 0, j
    while True:
        if src[k] == "(":
            depth += 1
        elif src[k] == ")":
            depth -= 1
            if depth == 0:
                break
        k += 1
    args = src[j + 1:k]
    out.append(src[i:m.start()])
    out.append("emu_launch((const void *)%s, [=]() { %s(%s); }, %s)" % (name, name, args, cfg))
    i = k + 1
sys.stdout.write('#line 1 "%s"\n' % sys.argv[1] + "".join(out))
