"""The cache entry of a Winograd convolution, importable without numba (fastnn.fast_layers checks caches)."""


class WinogradTiles:
    """What a compiled 3x3 stride-1 convolution keeps for its backward in place of x_cols: the transformed input
    V (16, C, T) and filters U (16, F, C), and its tile grid."""

    __slots__ = ("V", "U", "tiles_h", "tiles_w")

    def __init__(self, V, U, tiles_h, tiles_w):
        self.V, self.U, self.tiles_h, self.tiles_w = V, U, tiles_h, tiles_w

    @property
    def dtype(self):
        return self.V.dtype
