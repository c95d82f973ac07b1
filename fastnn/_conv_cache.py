"""What a compiled convolution keeps in its cache where the reference keeps x_cols, importable without numba
(fastnn.fast_layers checks caches). The reference backward rebuilds the columns from x when it finds either."""


class WinogradTiles:
    """What a compiled 3x3 stride-1 convolution keeps for its backward in place of x_cols: the transformed input
    V (36, C, T) and filters U (36, F, C), and its tile grid."""

    __slots__ = ("V", "U", "tiles_h", "tiles_w")

    def __init__(self, V, U, tiles_h, tiles_w):
        self.V, self.U, self.tiles_h, self.tiles_w = V, U, tiles_h, tiles_w

    @property
    def dtype(self):
        return self.V.dtype


class ColumnsFromInput:
    """What a compiled im2col convolution keeps in place of x_cols: only their dtype. Its backward gathers the
    columns again from x, a block of images at a time, as its forward did."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def __repr__(self):
        return f"ColumnsFromInput({self.dtype})"
