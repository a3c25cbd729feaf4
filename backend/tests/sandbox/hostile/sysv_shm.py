"""Hostile: allocates System V shared memory segments (1 GB each), fills and detaches them: memory
that would outlive the call, outside the address-space limit."""

import ctypes

from tradefleet.strategy import Strategy

IPC_PRIVATE, IPC_CREAT = 0, 0o1000


class SysvShm(Strategy):
    """Raises with the number of gigabytes it got and the errno that stopped it."""

    timeframe = "1m"

    def signals(self, candles):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmat.restype = ctypes.c_void_p
        got = 0
        for _ in range(4):
            segment = libc.shmget(IPC_PRIVATE, 1 << 30, IPC_CREAT | 0o600)
            if segment < 0:
                break
            address = libc.shmat(segment, None, 0)
            if address is None or address == ctypes.c_void_p(-1).value:
                break
            ctypes.memset(address, 1, 1 << 30)
            libc.shmdt(ctypes.c_void_p(address))
            got += 1
        raise RuntimeError(f"GOT {got} GB of shared memory" if got else
                           f"shared memory refused: {__import__('os').strerror(ctypes.get_errno())}")
