"""The starter's ImageNet-side loaders for fastnn.data_utils: Tiny ImageNet, the 25 ImageNet validation images, and
a directory of pickled models. Images are read with Pillow (`pip install fastnn[images]`); every pickle goes
through data_utils' restricted unpickler, never the unrestricted one."""

import os
import pickle
import warnings
import zipfile

import numpy as np

from ._files import NPZ_MEMBER_ERRORS

IMAGENET_VAL_ENV = "FASTNN_IMAGENET_VAL"
IMAGENET_VAL_FILE = os.path.join("datasets", "imagenet_val_25.npz")
TINY_SIDE = 64


def _read_image(filename, fn):
    """(H, W, 3) uint8 pixels of an image file; grayscale images are repeated over the three channels."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(f"{fn} reads images with Pillow: pip install 'fastnn[images]'") from error
    try:
        with Image.open(filename) as image:
            pixels = np.asarray(image.convert("RGB") if image.mode not in ("RGB", "L") else image)
    except (OSError, Image.DecompressionBombError) as error:  # the latter: a header claiming a huge image
        raise ValueError(f"{fn}: cannot read the image {filename!r} ({error})") from error
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return pixels


def _tiny_block(filenames, directory, dtype, fn):
    """(N, 3, 64, 64) array of `dtype` from the named image files in `directory`."""
    block = np.empty((len(filenames), 3, TINY_SIDE, TINY_SIDE), dtype=dtype)
    for i, name in enumerate(filenames):
        pixels = _read_image(os.path.join(directory, name), fn)
        if pixels.shape != (TINY_SIDE, TINY_SIDE, 3):
            raise ValueError(f"{fn}: {os.path.join(directory, name)!r} is {pixels.shape[1]}x{pixels.shape[0]} "
                             f"pixels; Tiny ImageNet images are {TINY_SIDE}x{TINY_SIDE}")
        block[i] = pixels.transpose(2, 0, 1)
    return block


def _tab_lines(filename, fn, columns):
    """The first `columns` tab-separated fields of every non-empty line of a text file."""
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{fn}: {filename!r} not found (is the path the extracted tiny-imagenet-200?)")
    rows = []
    with open(filename, encoding="utf-8-sig") as f:  # -sig: a byte-order mark some editors write is not text
        try:
            lines = f.read().split("\n")  # universal newlines: \r\n and \r are \n here
        except UnicodeDecodeError as error:
            raise ValueError(f"{fn}: {filename!r} is not UTF-8 text ({error})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < columns:
            raise ValueError(f"{fn}: {filename!r} line {number} has {len(fields)} tab-separated fields, "
                             f"expected at least {columns}")
        rows.append([field.strip() for field in fields[:columns]])
    return rows


def _labels(wnids, wnid_to_label, source, fn):
    unknown = sorted(set(wnids) - set(wnid_to_label))
    if unknown:
        raise ValueError(f"{fn}: {source!r} names classes missing from wnids.txt: {unknown[:5]}")
    return np.array([wnid_to_label[w] for w in wnids], dtype=np.int64)


def load_tiny_imagenet(path, dtype=np.float32, subtract_mean=True):
    """Load Tiny ImageNet (or a dataset laid out like it) from the directory `path`.

    Returns a dict with:
    - class_names: list; class_names[i] is the list of names of class i (from words.txt)
    - X_train: (N_tr, 3, 64, 64) training images of `dtype`; y_train: (N_tr,) int64 labels
    - X_val, y_val: the validation images and labels (val/val_annotations.txt)
    - X_test: (N_te, 3, 64, 64) test images in file-name order; y_test: their labels where
      test/test_annotations.txt exists, else None
    - mean_image: (3, 64, 64) mean training image, subtracted from every split when subtract_mean

    dtype may be an integer type (np.uint8 keeps the 100,000 training images in 1.2 GB) when subtract_mean is
    False; mean_image is then float64. Without test/images, X_test is empty (the starter raises there).
    """
    fn = "load_tiny_imagenet"
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: path must be a str or os.PathLike directory, got {type(path).__name__}")
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: dtype must be a floating type, got {dtype!r} (an integer type also works with "
                        "subtract_mean=False)") from None
    if dtype.kind not in "uif":
        raise TypeError(f"{fn}: dtype must be a floating type, got {dtype} (an integer type also works with "
                        "subtract_mean=False)")
    if dtype.kind in "iu" and not np.can_cast(np.uint8, dtype):  # int8 would wrap pixels 128-255 around
        raise TypeError(f"{fn}: dtype {dtype} cannot hold pixel values 0-255; use uint8 or a wider type")
    if dtype.kind != "f" and subtract_mean:
        raise TypeError(f"{fn}: subtract_mean=True needs a floating dtype, got {dtype}: mean-subtracted pixels are "
                        "not integers (pass subtract_mean=False to keep integer pixels)")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{fn}: {os.fspath(path)!r} is not a directory (download tiny-imagenet-200.zip "
                                "from http://cs231n.stanford.edu/tiny-imagenet-200.zip and extract it)")
    wnids = [row[0] for row in _tab_lines(os.path.join(path, "wnids.txt"), fn, 1)]
    repeated = sorted({w for w in wnids if wnids.count(w) > 1})
    if repeated:  # its images would be loaded twice, under the last label, and the first label left empty
        raise ValueError(f"{fn}: wnids.txt lists {repeated[:5]} more than once; each class must appear once")
    wnid_to_label = {wnid: i for i, wnid in enumerate(wnids)}
    words = {wnid: [w.strip() for w in names.split(",")]
             for wnid, names in _tab_lines(os.path.join(path, "words.txt"), fn, 2)}
    missing = [w for w in wnids if w not in words]
    if missing:
        raise ValueError(f"{fn}: words.txt has no names for {missing[:5]}")
    class_names = [words[w] for w in wnids]

    from tqdm.auto import tqdm

    xs, ys = [], []
    for wnid in tqdm(wnids, desc=f"{fn}: train", unit="class", disable=None):
        boxes = os.path.join(path, "train", wnid, f"{wnid}_boxes.txt")
        filenames = [row[0] for row in _tab_lines(boxes, fn, 1)]
        xs.append(_tiny_block(filenames, os.path.join(path, "train", wnid, "images"), dtype, fn))
        ys.append(np.full(len(filenames), wnid_to_label[wnid], dtype=np.int64))
    X_train = np.concatenate(xs) if xs else np.empty((0, 3, TINY_SIDE, TINY_SIDE), dtype=dtype)
    y_train = np.concatenate(ys) if ys else np.empty(0, dtype=np.int64)

    annotations = os.path.join(path, "val", "val_annotations.txt")
    val_rows = _tab_lines(annotations, fn, 2)
    X_val = _tiny_block([r[0] for r in val_rows], os.path.join(path, "val", "images"), dtype, fn)
    y_val = _labels([r[1] for r in val_rows], wnid_to_label, annotations, fn)

    test_dir = os.path.join(path, "test", "images")
    test_files = sorted(os.listdir(test_dir)) if os.path.isdir(test_dir) else []
    X_test = _tiny_block(test_files, test_dir, dtype, fn)
    y_test = None
    test_annotations = os.path.join(path, "test", "test_annotations.txt")
    if os.path.isfile(test_annotations):
        file_to_wnid = dict(_tab_lines(test_annotations, fn, 2))
        unlabelled = [f for f in test_files if f not in file_to_wnid]
        if unlabelled:
            raise ValueError(f"{fn}: {test_annotations!r} has no label for {unlabelled[:5]}")
        y_test = _labels([file_to_wnid[f] for f in test_files], wnid_to_label, test_annotations, fn)

    mean_dtype = dtype if dtype.kind == "f" else np.dtype(np.float64)  # what X_train.mean gives
    mean_image = X_train.mean(axis=0) if len(X_train) else np.zeros((3, TINY_SIDE, TINY_SIDE), dtype=mean_dtype)
    if subtract_mean:
        for X in (X_train, X_val, X_test):
            X -= mean_image
    return {"class_names": class_names, "X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val,
            "X_test": X_test, "y_test": y_test, "mean_image": mean_image}


def _pickled_member(archive, name, source, fn):
    """An object array (a pickle) stored in an .npz, read with the restricted unpickler."""
    from .data_utils import _restricted_load

    where = f"{fn}: {source} member {name}"
    try:
        with archive.open(name) as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            if dtype == np.dtype(object):
                return _restricted_load(f, where)  # its own errors name `where`, and are ValueErrors
    except pickle.UnpicklingError:
        raise
    except NPZ_MEMBER_ERRORS as error:
        raise ValueError(f"{where} is damaged or not a .npy array ({type(error).__name__}: {error})") from error
    raise ValueError(f"{where} holds a {dtype} array of shape {shape}; expected a pickled dict (an object array, as "
                     "np.savez stores one)")


def _plain_member(archive, name, source, fn):
    """An array stored in an .npz, read without pickles."""
    try:
        with archive.open(name) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except NPZ_MEMBER_ERRORS as error:
        raise ValueError(f"{fn}: {source} member {name} cannot be read as a plain array ({error}); X and y "
                         "must be numeric arrays") from error


def imagenet_val_candidates(path=None):
    """Where load_imagenet_val looks, in order: `path`, $FASTNN_IMAGENET_VAL, cs231n/datasets/imagenet_val_25.npz
    and datasets/imagenet_val_25.npz under the working directory."""
    if path is not None and not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"load_imagenet_val: path must be a str or os.PathLike, got {type(path).__name__}")
    candidates = [] if path is None else [os.fsdecode(path)]
    if os.environ.get(IMAGENET_VAL_ENV):
        candidates.append(os.environ[IMAGENET_VAL_ENV])
    return candidates + [os.path.join("cs231n", IMAGENET_VAL_FILE), IMAGENET_VAL_FILE]


def load_imagenet_val(num=None, path=None):
    """Load the 25 ImageNet validation images the starter ships as imagenet_val_25.npz.

    Inputs:
    - num: how many to return (all when None)
    - path: the .npz file (fastnn addition); else the first of imagenet_val_candidates() that exists

    Returns a tuple of:
    - X: (num, 224, 224, 3) uint8 images
    - y: (num,) int labels
    - class_names: dict mapping an ImageNet label to its name
    """
    fn = "load_imagenet_val"
    if num is not None and (isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0):
        raise ValueError(f"{fn}: num must be None or an integer >= 0, got {num!r}")
    candidates = imagenet_val_candidates(path)
    if path is not None or os.environ.get(IMAGENET_VAL_ENV):  # named: it must be there, no quiet fall back
        candidates = candidates[:1]
    found = next((c for c in candidates if os.path.isfile(c)), None)
    if found is None:
        looked = ", ".join(repr(os.path.abspath(c)) for c in candidates)
        named = f" (${IMAGENET_VAL_ENV})" if path is None and os.environ.get(IMAGENET_VAL_ENV) else ""
        raise FileNotFoundError(f"{fn}: imagenet_val_25.npz not found; looked in {looked}{named}. Get it with the "
                                f"starter's cs231n/datasets/get_imagenet_val.sh, then pass path= or set "
                                f"{IMAGENET_VAL_ENV}.")
    try:
        with zipfile.ZipFile(found) as archive:
            members = set(archive.namelist())
            needed = {"X.npy", "y.npy", "label_map.npy"}
            if not needed <= members:
                raise ValueError(f"{fn}: {found!r} lacks {sorted(needed - members)}")
            label_map = _pickled_member(archive, "label_map.npy", repr(found), fn)
            X, y = (_plain_member(archive, name, repr(found), fn) for name in ("X.npy", "y.npy"))
    except (zipfile.BadZipFile, NotImplementedError) as error:  # a damaged directory or compression method
        raise ValueError(f"{fn}: {found!r} is not a readable .npz archive ({error})") from error
    class_names = label_map.item() if isinstance(label_map, np.ndarray) and label_map.shape == () else label_map
    if not isinstance(class_names, dict):
        raise ValueError(f"{fn}: {found!r} label_map is a {type(class_names).__name__}, expected a dict")
    if X.ndim != 4 or X.shape[3] != 3 or y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"{fn}: {found!r} holds X {X.shape} and y {y.shape}; expected X (N, H, W, 3) images "
                         "and y (N,) labels")
    if num is not None:
        X, y = X[:num], y[:num]
    return X, y, class_names


def load_models(models_dir):
    """Load the models pickled in `models_dir` (each file a dict with key 'model').

    Returns a dict mapping each file name to its unpickled 'model'. Files that are not pickles are skipped, as in
    the starter; a pickle fastnn's restricted unpickler refuses (one that would import a class or call a
    function) and a pickle without a 'model' are skipped with a warning naming the file.
    """
    fn = "load_models"
    if not isinstance(models_dir, (str, bytes, os.PathLike)):
        raise TypeError(f"{fn}: models_dir must be a path (str or os.PathLike), got {type(models_dir).__name__}")
    if not os.path.isdir(models_dir):
        raise FileNotFoundError(f"{fn}: {os.fspath(models_dir)!r} is not a directory")
    from .data_utils import UnsafePickleError, load_pickle

    models = {}
    for name in sorted(os.listdir(models_dir)):
        filename = os.path.join(models_dir, name)
        if not os.path.isfile(filename):
            continue
        try:
            content = load_pickle(filename)
        except UnsafePickleError as error:
            warnings.warn(f"{fn}: skipped {filename!r}: {error}", RuntimeWarning, stacklevel=2)
            continue
        except pickle.UnpicklingError:
            continue
        if not isinstance(content, dict) or "model" not in content:
            warnings.warn(f"{fn}: skipped {filename!r}: not a dict with a 'model' key", RuntimeWarning, stacklevel=2)
            continue
        models[name] = content["model"]
    return models
