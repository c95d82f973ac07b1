"""Normalisation kernels. Mirror fastnn.reference.norm.

Statistics accumulate in float64 whatever the input dtype. Column reductions over the batch (batchnorm mean and
variance, dgamma, dbeta) split the rows into a FIXED number of chunks, each summed by one task into its own
row of a partial buffer, then the chunks are added in order: the result does not depend on the thread count.
The variance uses sums shifted by the first row (batchnorm) or the first entry of the row or group (layernorm,
groupnorm: block_statistics), which keeps a one-pass variance accurate when the mean is large against the
spread; a non-finite first entry shifts by 0 instead (Inf - Inf would make an Inf column's mean NaN, where
np.mean gives Inf).

Batchnorm does not store xhat: its backward kernels recompute it as (x - mean) * invstd, the forward's own float
operations, so the same bits, and the forward writes one array instead of two (0.75x the time of forward +
backward, measured in one process between cache-evicting steps). Layernorm does not store it either: its
statistics are rounded to x's dtype, xhat = (x - mean) * invstd is computed in that dtype by a helper compiled
without fast-math (so no reassociation changes it), and the backward is one pass over dout and x that gives dx
from per-row sums and adds dbeta, dgamma into per-chunk column sums (0.71-0.74x the time of forward + backward
with a stored xhat and a separate column-sum pass, measured in one process). Groupnorm is built the same way,
with per-(sample, channel) partial sums (0.65-0.73x the time of forward + backward, (64, 32, 16, 16), G = 4).
"""

import numpy as np
from numba import prange

from ._jit import kernel

CHUNKS = 16


@kernel
def sum_chunks(parts, out):
    """out[d] = the sum over chunks t of parts[t, d], in chunk order: the same at any thread count."""
    for d in range(out.shape[0]):
        total = 0.0
        for t in range(parts.shape[0]):
            total += parts[t, d]
        out[d] = total


@kernel
def finite_or_zero(v):
    """The shift for a one-pass variance: v itself, or 0.0 where v is Inf or NaN."""
    return np.float64(v) if np.isfinite(v) else 0.0


@kernel
def overflowed_variance(m):
    """The variance where the mean square of the shifted values overflowed: Inf for a finite mean m (the spread
    is beyond the square root of the largest float, where q - m * m would be Inf - Inf), NaN for an infinite one,
    as np.var gives. (np.var can still give a finite value where the first row, the shift, is far out: its
    offset from the others is what squares here.)"""
    return np.inf if np.isfinite(m) else np.nan


@kernel
def backward_scale(gamma, invstd, train):
    """gamma * invstd, the batchnorm backward's factor; NaN in train mode for an infinite gamma, as the reference's
    dout * gamma less its mean gives (Inf - Inf, or 0 * Inf, in every entry of the feature)."""
    k = gamma * invstd
    return k - k if train and not np.isfinite(gamma) else k  # NaN in k's own dtype (np.nan would make it float64)


@kernel
def shifted_moments(shift, s, q, n):
    """(mean, biased variance) of n values from s, the sum of (x - shift), and q, the sum of its square."""
    m = s / n
    q = q / n
    return shift + m, (max(q - m * m, 0.0) if not np.isinf(q) else overflowed_variance(m))


@kernel
def moments_from_sums(shift, n, mean, var):
    """mean and (biased) var from the sums of (x - shift) in mean and of its square in var, in place."""
    for d in range(mean.shape[0]):
        mean[d], var[d] = shifted_moments(shift[d], mean[d], var[d], n)


@kernel(fast_sums=True)
def block_moments(block, shift):
    """(mean, biased variance) in float64 of all the entries of a 2-D block, from one pass of sums of the entries
    less `shift` and of their squares."""
    s = 0.0
    q = 0.0
    for r in range(block.shape[0]):
        for d in range(block.shape[1]):
            v = block[r, d] - shift
            s += v
            q += v * v
    return shifted_moments(shift, s, q, block.size)


# (shift - mean)^2 / var beyond which the statistics make a second pass, shifted by the mean; a one-pass
# variance loses that factor of float64's precision. Rows, groups and channels: a second pass over the same
# contiguous block, cheap, so 9 (three standard deviations: 0.3% of normal rows). Batchnorm's columns: a strided
# pass, which at 9 cost +2-3% on normal data and +7% after a ReLU, at 64 nothing.
FAR_SHIFT = 9.0
FAR_COLUMN_SHIFT = 64.0


@kernel
def far_shift(shift, mean, var, limit):
    """Whether a one-pass variance shifted by `shift` may have lost too much to cancellation: (shift - mean)^2
    beyond limit * var, squares that overflowed (var Inf), or anything not finite."""
    offset = shift - mean
    return not (offset * offset <= limit * var and var < np.inf)


@kernel
def second_moments(mean, var, mean2, var2):
    """The second pass's (mean2, var2), unless its sums overflowed where the first pass's did not (values near
    the largest float, added in another order): then the first pass's."""
    if np.isfinite(mean2) or not np.isfinite(mean):
        return mean2, var2
    return mean, var


@kernel
def block_statistics(block, eps):
    """(mean, 1 / sqrt(var + eps)) in float64 of a 2-D block (a layernorm row, a groupnorm group). One pass shifted
    by the first entry; its variance loses (shift - mean)^2 / var of float64's precision to cancellation (up to
    the block's size: 6e-10 against the reference's 3e-16 for a group of 131072 whose first entry was an
    outlier), so where far_shift says so (the first entry more than three standard deviations out) a second pass
    shifts by the mean just found. (Two passes every time ran 1.2x the time, layernorm forward (1024, 1024)
    float32, measured here.)"""
    shift = finite_or_zero(block[0, 0])
    mean, var = block_moments(block, shift)
    if far_shift(shift, mean, var, FAR_SHIFT):
        mean, var = second_moments(mean, var, *block_moments(block, finite_or_zero(mean)))
    return mean, 1.0 / np.sqrt(var + eps)


@kernel
def shifted_sums(x, lo, hi, shift, s, q):
    """s[d] += x[i, d] - shift[d] and q[d] += its square, over rows lo..hi-1 (float64). Four rows at a time, so
    each s[d], q[d] and shift[d] is loaded and stored once per four (0.8-0.9x the time of batchnorm forward +
    backward, measured here); their sum is added pairwise, the same way at every thread count."""
    D = x.shape[1]
    i = lo
    while i + 4 <= hi:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        for d in range(D):
            c = shift[d]
            v0 = x0[d] - c
            v1 = x1[d] - c
            v2 = x2[d] - c
            v3 = x3[d] - c
            s[d] += (v0 + v1) + (v2 + v3)
            q[d] += (v0 * v0 + v1 * v1) + (v2 * v2 + v3 * v3)
        i += 4
    for r in range(i, hi):  # the last rows, one at a time
        for d in range(D):
            v = x[r, d] - shift[d]
            s[d] += v
            q[d] += v * v


@kernel
def far_columns(shift, mean64, var64, far):
    """The columns whose one-pass shift lay far out (far_shift), into far[:count]; returns count."""
    count = 0
    for d in range(mean64.shape[0]):
        if far_shift(shift[d], mean64[d], var64[d], FAR_COLUMN_SHIFT):
            far[count] = d
            count += 1
    return count


@kernel
def remeasure_columns(x, far, count, mean64, var64):
    """mean64, var64 again, shifted by the mean, for the columns far[:count] of x (N, D), in one row-by-row pass
    over just those columns: for a few of them (this pass ran 2.8x the time of batchnorm forward where every
    column was far, one outlying sample in the first row; remeasure_far_columns then makes one)."""
    centre, s, q = np.empty(count), np.zeros(count), np.zeros(count)
    for j in range(count):
        centre[j] = finite_or_zero(mean64[far[j]])
    for i in range(x.shape[0]):
        for j in range(count):
            v = x[i, far[j]] - centre[j]
            s[j] += v
            q[j] += v * v
    for j in range(count):
        d = far[j]
        mean64[d], var64[d] = second_moments(mean64[d], var64[d],
                                             *shifted_moments(centre[j], s[j], q[j], x.shape[0]))


@kernel
def remeasure_far_columns(x, shift, partial, mean64, var64):
    """mean64, var64 again, shifted by the mean, for the columns of x (N, D) whose one-pass shift (the first row)
    lay far out: they lost up to N of float64's precision (7e-12 against the reference's 8e-15 at N = 20000).
    Over a quarter of the columns (an outlying sample in the first row), a whole second pass in the first's
    chunks (partial, overwritten), serial: it is rare; fewer, remeasure_columns."""
    N, D = x.shape
    far = np.empty(D, np.int64)
    count = far_columns(shift, mean64, var64, far)
    if 4 * count <= D:
        remeasure_columns(x, far, count, mean64, var64)
        return
    centre = np.empty(D)
    for d in range(D):
        centre[d] = finite_or_zero(mean64[d])
    partial[:] = 0.0
    chunks = partial.shape[0]
    for t in range(chunks):
        shifted_sums(x, t * N // chunks, (t + 1) * N // chunks, centre, partial[t, 0], partial[t, 1])
    mean2, var2 = np.empty(D), np.empty(D)
    batch_moments(partial, centre, N, mean2, var2)
    for j in range(count):
        d = far[j]
        mean64[d], var64[d] = second_moments(mean64[d], var64[d], mean2[d], var2[d])


@kernel
def batch_moments(partial, shift, n, mean64, var64):
    """mean64, var64 (float64, biased) from the per-chunk sums of x (n, D) shifted by its first row."""
    sum_chunks(partial[:, 0], mean64)
    sum_chunks(partial[:, 1], var64)
    moments_from_sums(shift, n, mean64, var64)


@kernel
def rounded_statistics(mean64, var64, eps, mean, invstd):
    """mean and invstd = 1 / sqrt(var + eps) rounded to their arrays' dtype (the reference's float operations)."""
    for d in range(mean64.shape[0]):
        mean[d] = mean64[d]
        invstd[d] = 1.0 / np.sqrt(var64[d] + eps)


@kernel(parallel=True)
def batchnorm_train_forward(x, gamma, beta, eps, mean64, var64, mean, invstd, out):
    """Train-mode batchnorm in one call: the column moments of x (mean64, var64), mean and invstd in x's dtype,
    and out = gamma * xhat + beta with xhat = (x - mean) * invstd (not stored)."""
    N, D = x.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 2, D))
    shift = np.empty(D)
    for d in range(D):
        shift[d] = finite_or_zero(x[0, d])
    for t in prange(chunks):
        shifted_sums(x, t * N // chunks, (t + 1) * N // chunks, shift, partial[t, 0], partial[t, 1])
    batch_moments(partial, shift, N, mean64, var64)
    remeasure_far_columns(x, shift, partial, mean64, var64)
    rounded_statistics(mean64, var64, eps, mean, invstd)
    for i in prange(N):
        for d in range(D):
            h = (x[i, d] - mean[d]) * invstd[d]
            out[i, d] = gamma[d] * h + beta[d]


@kernel(parallel=True)
def normalise_rows(x, mean, invstd, gamma, beta, out):
    """Per feature d: out = gamma[d] * xhat + beta[d], xhat = (x - mean[d]) * invstd[d] (not stored)."""
    N, D = x.shape
    for i in prange(N):
        for d in range(D):
            h = (x[i, d] - mean[d]) * invstd[d]
            out[i, d] = gamma[d] * h + beta[d]


@kernel
def gradient_sums(dout, x, mean, scale, lo, hi, s, q):
    """s[d] += dout[i, d] and q[d] += dout[i, d] * xhat[i, d], xhat = (x - mean[d]) * scale[d], over rows
    lo..hi-1 (float64); four rows at a time, as shifted_sums."""
    D = dout.shape[1]
    i = lo
    while i + 4 <= hi:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        g0, g1, g2, g3 = dout[i], dout[i + 1], dout[i + 2], dout[i + 3]
        for d in range(D):
            m = mean[d]
            c = scale[d]
            a0 = np.float64(g0[d])
            a1 = np.float64(g1[d])
            a2 = np.float64(g2[d])
            a3 = np.float64(g3[d])
            s[d] += (a0 + a1) + (a2 + a3)
            q[d] += (a0 * ((x0[d] - m) * c) + a1 * ((x1[d] - m) * c)) + (a2 * ((x2[d] - m) * c)
                                                                       + a3 * ((x3[d] - m) * c))
        i += 4
    for r in range(i, hi):
        for d in range(D):
            g = np.float64(dout[r, d])
            s[d] += g
            q[d] += g * ((x[r, d] - mean[d]) * scale[d])


@kernel(parallel=True)
def column_sums(dout, x, mean, scale, dbeta, dgamma):
    """dbeta[d] = sum over rows of dout, dgamma[d] = sum of dout * xhat with xhat = (x - mean[d]) * scale[d]
    (float64 accumulation)."""
    N, D = dout.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 2, D))
    for t in prange(chunks):
        gradient_sums(dout, x, mean, scale, t * N // chunks, (t + 1) * N // chunks, partial[t, 0], partial[t, 1])
    sum_chunks(partial[:, 0], dbeta)
    sum_chunks(partial[:, 1], dgamma)


@kernel(parallel=True)
def batchnorm_dx(dout, x, mean, scale, gamma, invstd, train, dbeta, dgamma, dx):
    """dx from column_sums' dbeta, dgamma. Train: dx = gamma * invstd / N * (N * dout - dbeta - xhat * dgamma),
    evaluated as dout * a[d] + b[d] - xhat * c[d] with coefficients per feature (no division per element: 0.9x
    the time, measured here), computed in float64 and rounded to dout's dtype: float32 math per element, as the
    reference's, ran 0.82-0.84x the time of float64 math (AVX2 machine, measured here); test: dx = dout * (gamma *
    invstd)."""
    N, D = dout.shape
    a, b, c = np.empty(D, dout.dtype), np.empty(D, dout.dtype), np.empty(D, dout.dtype)
    for d in range(D):
        k = backward_scale(gamma[d], invstd[d], train)  # in the input dtype, as the test-mode formula has it
        f = k / N
        a[d] = f * N if train else k
        b[d] = -f * dbeta[d]
        c[d] = f * dgamma[d]
    if train:
        for i in prange(N):
            for d in range(D):
                h = (x[i, d] - mean[d]) * scale[d]
                dx[i, d] = dout[i, d] * a[d] + b[d] - h * c[d]
    else:
        for i in prange(N):
            for d in range(D):
                dx[i, d] = dout[i, d] * a[d]


@kernel
def _xhat(v, shift, scale):
    """(v - shift) * scale. A helper compiled without fast-math, so a fast_sums kernel that inlines it cannot
    reassociate the product into its neighbours ((v - shift) * (scale * q), say): the same bits wherever the
    layernorm recomputes xhat."""
    return (v - shift) * scale


@kernel
def _row_dx(dout, gamma, xhat, invstd, s, q):
    """invstd * (dout * gamma - s - xhat * q); without fast-math, as _xhat. dout * gamma in float64, as s sums it:
    rounded to float32 it no longer cancelled s where it should (one feature: dx of 0 came out as ~1e-7 |dout| /
    sqrt(eps))."""
    return invstd * (np.float64(dout) * gamma - s - xhat * q)


@kernel(parallel=True, fast_sums=True)
def row_normalise(x, gamma, beta, eps, out, mean, invstd):
    """Layernorm: per row statistics (block_statistics, float64) rounded to x's dtype into mean and invstd,
    then out = gamma * xhat + beta with xhat = (x - mean[i]) * invstd[i] in x's dtype (not stored: the backward
    recomputes it with the same operations, so the same bits)."""
    N, D = x.shape
    for i in prange(N):
        mean[i], invstd[i] = block_statistics(x[i:i + 1], eps)
        m, r = mean[i], invstd[i]
        for d in range(D):
            out[i, d] = gamma[d] * _xhat(x[i, d], m, r) + beta[d]


@kernel(fast_sums=True)
def _row_sums(dout, x, shift, scale, gamma, i, column_dout, column_dout_xhat):
    """For row i, with xhat = (x - shift[i]) * scale[i] and g = dout * gamma: (sum of g, sum of g * xhat) in
    float64, adding dout and dout * xhat into the column sums."""
    m, c = shift[i], scale[i]
    s = 0.0
    q = 0.0
    for d in range(dout.shape[1]):
        h = _xhat(x[i, d], m, c)
        g = np.float64(dout[i, d])
        column_dout[d] += g
        column_dout_xhat[d] += g * h
        g *= gamma[d]
        s += g
        q += g * h
    return s, q


@kernel(fast_sums=True)
def _four_row_sums(dout, x, shift, scale, gamma, i, column_dout, column_dout_xhat):
    """_row_sums of rows i..i+3 in one pass, so each column sum is loaded and stored once per four rows (0.89x
    the time of the layernorm backward, (1024, 1024) float32, measured here). Returns the four (s, q) flat."""
    m0, m1, m2, m3 = shift[i], shift[i + 1], shift[i + 2], shift[i + 3]
    c0, c1, c2, c3 = scale[i], scale[i + 1], scale[i + 2], scale[i + 3]
    x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
    g0, g1, g2, g3 = dout[i], dout[i + 1], dout[i + 2], dout[i + 3]
    s0 = s1 = s2 = s3 = 0.0
    q0 = q1 = q2 = q3 = 0.0
    for d in range(dout.shape[1]):
        h0, h1 = _xhat(x0[d], m0, c0), _xhat(x1[d], m1, c1)
        h2, h3 = _xhat(x2[d], m2, c2), _xhat(x3[d], m3, c3)
        a0, a1, a2, a3 = np.float64(g0[d]), np.float64(g1[d]), np.float64(g2[d]), np.float64(g3[d])
        column_dout[d] += (a0 + a1) + (a2 + a3)
        column_dout_xhat[d] += (a0 * h0 + a1 * h1) + (a2 * h2 + a3 * h3)
        w = gamma[d]
        a0, a1, a2, a3 = a0 * w, a1 * w, a2 * w, a3 * w
        s0, s1, s2, s3 = s0 + a0, s1 + a1, s2 + a2, s3 + a3
        q0, q1, q2, q3 = q0 + a0 * h0, q1 + a1 * h1, q2 + a2 * h2, q3 + a3 * h3
    return s0, q0, s1, q1, s2, q2, s3, q3


@kernel
def _layernorm_row_dx(dout, x, shift, scale, gamma, invstd, i, s, q, dx):
    """dx[i] = invstd[i] * (g - mean(g) - xhat * mean(g * xhat)) from s, q = the sums of g and g * xhat."""
    D = dout.shape[1]
    s /= D
    q /= D
    m, c, r = shift[i], scale[i], invstd[i]
    for d in range(D):
        dx[i, d] = _row_dx(dout[i, d], gamma[d], _xhat(x[i, d], m, c), r, s, q)


@kernel(parallel=True)
def row_normalise_backward(dout, x, shift, scale, gamma, invstd, dx, dbeta, dgamma):
    """Layernorm backward in one pass over dout and x: per row, xhat = (x - shift[i]) * scale[i] and
    dx = invstd[i] * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * gamma; over rows, dbeta[d] = sum of
    dout and dgamma[d] = sum of dout * xhat (float64, in CHUNKS fixed chunks). A stored xhat comes in as x with
    shift 0 and scale 1 (exact)."""
    N, D = dout.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 2, D))
    for t in prange(chunks):
        column_dout, column_dout_xhat = partial[t, 0], partial[t, 1]
        i, hi = t * N // chunks, (t + 1) * N // chunks
        while i + 4 <= hi:
            sums = _four_row_sums(dout, x, shift, scale, gamma, i, column_dout, column_dout_xhat)
            for k in range(4):
                _layernorm_row_dx(dout, x, shift, scale, gamma, invstd, i + k, sums[2 * k], sums[2 * k + 1], dx)
            i += 4
        for r in range(i, hi):
            s, q = _row_sums(dout, x, shift, scale, gamma, r, column_dout, column_dout_xhat)
            _layernorm_row_dx(dout, x, shift, scale, gamma, invstd, r, s, q, dx)
    sum_chunks(partial[:, 0], dbeta)
    sum_chunks(partial[:, 1], dgamma)


@kernel(fast_sums=True)
def _channel_pass(x, c, shift):
    """(mean, biased variance) in float64 of channel c of x (N, C, P), one pass shifted by `shift`: block_moments
    with the channel index kept (block_moments(x[:, c]) gets a strided view, which numba did not vectorise: 2.4x
    the time of spatial batchnorm forward)."""
    s = 0.0
    q = 0.0
    for n in range(x.shape[0]):
        for k in range(x.shape[2]):
            v = x[n, c, k] - shift
            s += v
            q += v * v
    return shifted_moments(shift, s, q, x.shape[0] * x.shape[2])


@kernel(parallel=True)
def channel_moments(x, mean, var):
    """mean[c], var[c] (float64) of x (N, C, P) over (N, P): one channel per task, one pass shifted by its first
    entry, and a second shifted by the mean where that first entry lay far out (far_shift; without it, 3e-10
    against the reference's 4e-16 for a channel of 65536 whose first entry was an outlier)."""
    for c in prange(x.shape[1]):
        shift = finite_or_zero(x[0, c, 0])
        m, v = _channel_pass(x, c, shift)
        if far_shift(shift, m, v, FAR_SHIFT):
            m, v = second_moments(m, v, *_channel_pass(x, c, finite_or_zero(m)))
        mean[c], var[c] = m, v


@kernel(parallel=True)
def channel_normalise(x, mean, invstd, gamma, beta, xhat, out):
    """x (N, C, P): xhat = (x - mean[c]) * invstd[c], out = gamma[c] * xhat + beta[c]."""
    N, C, P = x.shape
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        for k in range(P):
            h = (x[n, c, k] - mean[c]) * invstd[c]
            xhat[n, c, k] = h
            out[n, c, k] = gamma[c] * h + beta[c]


@kernel(fast_sums=True)
def _channel_gradient_sums(dout, xhat, c):
    """(sum of dout, sum of dout * xhat) over (N, P) for channel c, in float64. A helper outside the prange loop,
    so that the serial and the parallel build vectorise the sum alike: the same bits at every thread count
    (inline, the two builds differed by a few ulps)."""
    s = 0.0
    q = 0.0
    for n in range(dout.shape[0]):
        for k in range(dout.shape[2]):
            g = np.float64(dout[n, c, k])
            s += g
            q += g * xhat[n, c, k]
    return s, q


@kernel(parallel=True)
def channel_sums(dout, xhat, dbeta, dgamma):
    """dbeta[c], dgamma[c]: sums over (N, P) of dout and dout * xhat, one channel per task."""
    for c in prange(dout.shape[1]):
        dbeta[c], dgamma[c] = _channel_gradient_sums(dout, xhat, c)


@kernel(parallel=True)
def channel_dx(dout, xhat, gamma, invstd, dbeta, dgamma, train, dx):
    """Spatial batchnorm backward: the batchnorm formula per channel over M = N * P values."""
    N, C, P = dout.shape
    M = N * P
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        k = backward_scale(gamma[c], invstd[c], train)
        for j in range(P):
            if train:
                dx[n, c, j] = k / M * (M * dout[n, c, j] - dbeta[c] - xhat[n, c, j] * dgamma[c])
            else:
                dx[n, c, j] = k * dout[n, c, j]


@kernel(parallel=True, fast_sums=True)
def group_normalise(x, G, gamma, beta, eps, out, mean, invstd):
    """Groupnorm forward, x (N, C, P): statistics per (n, group of C/G channels), one group per task, rounded to
    x's dtype into mean and invstd (N, G); out = gamma * xhat + beta with xhat = _xhat(x, mean, invstd) (not
    stored, as layernorm's)."""
    N, C, P = x.shape
    Cg = C // G
    for ng in prange(N * G):
        n = ng // G
        g = ng % G
        mean[n, g], invstd[n, g] = block_statistics(x[n, g * Cg:(g + 1) * Cg], eps)
        m, r = mean[n, g], invstd[n, g]
        for c in range(g * Cg, (g + 1) * Cg):
            for k in range(P):
                out[n, c, k] = gamma[c] * _xhat(x[n, c, k], m, r) + beta[c]


@kernel(fast_sums=True)
def _plane_gradient_sums(dout, x, shift, scale):
    """(sum of dout, sum of dout * xhat) in float64 over one plane, xhat = _xhat(x, shift, scale): a helper, so
    both builds of group_backward vectorise it alike (see _channel_gradient_sums)."""
    s = 0.0
    q = 0.0
    for k in range(dout.shape[0]):
        g = np.float64(dout[k])
        s += g
        q += g * _xhat(x[k], shift, scale)
    return s, q


@kernel(parallel=True)
def group_backward(dout, x, G, shift, scale, gamma, invstd, dx, dbeta, dgamma):
    """Groupnorm backward in one pass over dout and x, one (n, group) per task: xhat = _xhat(x, shift[n, g],
    scale[n, g]); dx = invstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * gamma over the group; per
    (n, c) the sums of dout and dout * xhat, then dbeta[c] and dgamma[c] add them over n in order (the same at
    any thread count). A stored xhat comes in as x with shift 0 and scale 1."""
    N, C, P = dout.shape
    Cg = C // G
    M = Cg * P
    partial = np.empty((2, N, C))
    for ng in prange(N * G):
        n = ng // G
        grp = ng % G
        m, w = shift[n, grp], scale[n, grp]
        s = 0.0
        q = 0.0
        for c in range(grp * Cg, (grp + 1) * Cg):
            channel_dout, channel_dout_xhat = _plane_gradient_sums(dout[n, c], x[n, c], m, w)
            partial[0, n, c] = channel_dout
            partial[1, n, c] = channel_dout_xhat
            if np.isfinite(gamma[c]):
                s += channel_dout * gamma[c]
                q += channel_dout_xhat * gamma[c]
            else:  # gamma per entry, as the reference: Inf times mixed-sign dout sums to NaN, not to one Inf
                for k in range(P):
                    g = np.float64(dout[n, c, k]) * gamma[c]
                    s += g
                    q += g * _xhat(x[n, c, k], m, w)
        s /= M
        q /= M
        r = invstd[n, grp]
        for c in range(grp * Cg, (grp + 1) * Cg):
            for k in range(P):
                dx[n, c, k] = _row_dx(dout[n, c, k], gamma[c], _xhat(x[n, c, k], m, w), r, s, q)
    sum_chunks(partial[0], dbeta)
    sum_chunks(partial[1], dgamma)
