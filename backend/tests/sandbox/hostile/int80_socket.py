"""Hostile: tries to get round the seccomp filter through the 32-bit system call table: machine code
in an executable page runs ``int 0x80`` with the i386 number of socket(2)."""

import ctypes
import mmap

from tradefleet.strategy import Strategy

CODE = bytes([
    0x53,                          # push rbx
    0xB8, 0x67, 0x01, 0x00, 0x00,  # mov eax, 359 (i386 socket)
    0xBB, 0x02, 0x00, 0x00, 0x00,  # mov ebx, AF_INET
    0xB9, 0x01, 0x00, 0x00, 0x00,  # mov ecx, SOCK_STREAM
    0x31, 0xD2,                    # xor edx, edx
    0xCD, 0x80,                    # int 0x80
    0x5B,                          # pop rbx
    0xC3,                          # ret
])


class Int80Socket(Strategy):
    """Raises with the system call's result (a socket fd would be an escape of the filter)."""

    timeframe = "1m"

    def signals(self, candles):
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        result = ctypes.CFUNCTYPE(ctypes.c_int)(address)()
        raise RuntimeError(f"int 0x80 socket returned {result}" + (" (GOT a socket)" if result >= 0 else ""))
