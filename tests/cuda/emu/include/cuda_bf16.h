/* CPU emulation shim (tests/cuda/emu): see cuda_emu.h */
#include "../cuda_emu.h"
