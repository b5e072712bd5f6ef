/* gst-earlyexit: NumPy .npy files of float32.
 *
 * Format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor version
 * byte, the header length (2 bytes little-endian in version 1, 4 bytes in 2 and
 * 3), then a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and a newline so that the data starts at a multiple of 64,
 * then the raw array. The reader parses that literal itself, accepting only the
 * subset np.save writes, rather than evaluating anything. */
#include "ee-npy.h"

#include <string.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* np.save aligns the data to this and leaves room for the first axis to grow
 * to this many digits in place; the writer does the same, byte for byte. */
#define NPY_ALIGN 64
#define NPY_GROWTH_DIGITS 21

typedef struct
{
  const char *path;
  const char *s;
  size_t n, i;
} Lexer;

static void
skip_space (Lexer *lx)
{
  while (lx->i < lx->n
         && (lx->s[lx->i] == ' ' || lx->s[lx->i] == '\t' || lx->s[lx->i] == '\n'
             || lx->s[lx->i] == '\r'))
    lx->i++;
}

/* Skips spaces, then consumes `c` if it comes next. */
static gboolean
accept (Lexer *lx, char c)
{
  skip_space (lx);
  if (lx->i < lx->n && lx->s[lx->i] == c) {
    lx->i++;
    return TRUE;
  }
  return FALSE;
}

static gboolean
fail (Lexer *lx, GError **error, const char *what)
{
  g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
               "%s: .npy header byte %zu: expected %s", lx->path, lx->i, what);
  return FALSE;
}

/* A quoted string without escapes, which np.save never writes; a copy. */
static char *
parse_string (Lexer *lx, GError **error)
{
  char quote;
  size_t start;

  skip_space (lx);
  if (lx->i == lx->n || (lx->s[lx->i] != '\'' && lx->s[lx->i] != '"')) {
    fail (lx, error, "a quoted string");
    return NULL;
  }
  quote = lx->s[lx->i++];
  start = lx->i;
  while (lx->i < lx->n && lx->s[lx->i] != quote && lx->s[lx->i] != '\\'
         && lx->s[lx->i] != '\n')
    lx->i++;
  if (lx->i == lx->n || lx->s[lx->i] != quote) {
    fail (lx, error, "the end of the string");
    return NULL;
  }
  lx->i++;
  return g_strndup (lx->s + start, lx->i - 1 - start);
}

static gboolean
parse_bool (Lexer *lx, gboolean *out, GError **error)
{
  skip_space (lx);
  if (lx->n - lx->i >= 4 && memcmp (lx->s + lx->i, "True", 4) == 0) {
    lx->i += 4;
    *out = TRUE;
    return TRUE;
  }
  if (lx->n - lx->i >= 5 && memcmp (lx->s + lx->i, "False", 5) == 0) {
    lx->i += 5;
    *out = FALSE;
    return TRUE;
  }
  return fail (lx, error, "True or False");
}

/* A tuple of non-negative integers: "()", "(3,)", "(2, 3)". The "L" suffix is
 * what NumPy wrote under Python 2. */
static gboolean
parse_shape (Lexer *lx, int *ndim, int64_t shape[EE_MAX_DIMS], GError **error)
{
  *ndim = 0;
  if (!accept (lx, '('))
    return fail (lx, error, "'(' opening the shape");
  while (!accept (lx, ')')) {
    int64_t v = 0;
    if (lx->i == lx->n || !g_ascii_isdigit (lx->s[lx->i]))
      return fail (lx, error, "a non-negative integer in the shape");
    for (; lx->i < lx->n && g_ascii_isdigit (lx->s[lx->i]); lx->i++) {
      int d = lx->s[lx->i] - '0';
      if (v > (G_MAXINT64 - d) / 10)
        return fail (lx, error, "a shape entry below 2^63");
      v = v * 10 + d;
    }
    if (lx->i < lx->n && lx->s[lx->i] == 'L')
      lx->i++;
    if (*ndim == EE_MAX_DIMS) {
      g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                   "%s: .npy 'shape' has more than %d dimensions", lx->path,
                   EE_MAX_DIMS);
      return FALSE;
    }
    shape[(*ndim)++] = v;
    if (!accept (lx, ',')) {
      if (!accept (lx, ')'))
        return fail (lx, error, "',' or ')' in the shape");
      break;
    }
  }
  return TRUE;
}

/* Parses the header dict into its three entries, each required once. */
static gboolean
parse_header (Lexer *lx, char **descr, gboolean *fortran, int *ndim,
              int64_t shape[EE_MAX_DIMS], GError **error)
{
  gboolean seen_fortran = FALSE, seen_shape = FALSE;

  if (!accept (lx, '{'))
    return fail (lx, error, "'{' opening the header dict");
  while (!accept (lx, '}')) {
    char *key = parse_string (lx, error);
    gboolean ok, dup;
    if (!key)
      return FALSE;
    if (!accept (lx, ':')) {
      g_free (key);
      return fail (lx, error, "':' after a key");
    }
    if (strcmp (key, "descr") == 0) {
      dup = *descr != NULL;
      ok = !dup && (*descr = parse_string (lx, error)) != NULL;
    } else if (strcmp (key, "fortran_order") == 0) {
      dup = seen_fortran;
      ok = !dup && parse_bool (lx, fortran, error);
      seen_fortran = TRUE;
    } else if (strcmp (key, "shape") == 0) {
      dup = seen_shape;
      ok = !dup && parse_shape (lx, ndim, shape, error);
      seen_shape = TRUE;
    } else {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: .npy header has an unknown key '%s'", lx->path, key);
      g_free (key);
      return FALSE;
    }
    if (dup)
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: .npy header has the key '%s' twice", lx->path, key);
    g_free (key);
    if (!ok)
      return FALSE;
    if (!accept (lx, ',')) {
      if (!accept (lx, '}'))
        return fail (lx, error, "',' or '}' in the header dict");
      break;
    }
  }
  skip_space (lx);
  if (lx->i != lx->n)
    return fail (lx, error, "only padding after the header dict");
  if (!*descr || !seen_fortran || !seen_shape) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "%s: .npy header lacks '%s'",
                 lx->path,
                 !*descr         ? "descr"
                 : !seen_fortran ? "fortran_order"
                                 : "shape");
    return FALSE;
  }
  return TRUE;
}

float *
ee_npy_read_f32 (const char *path, int *ndim, int64_t shape[EE_MAX_DIMS],
                 GError **error)
{
  GError *err = NULL;
  GMappedFile *mapped = g_mapped_file_new (path, FALSE, &err);
  const guint8 *p;
  gsize len;
  size_t header_len, start;
  Lexer lx = { path };
  char *descr = NULL;
  gboolean fortran = FALSE;
  int64_t numel = 1;
  size_t itemsize;
  float *out = NULL;

  if (!mapped) {
    g_set_error (error, EE_ERROR, EE_ERROR_FILE, "%s", err->message);
    g_error_free (err);
    return NULL;
  }
  p = (const guint8 *)g_mapped_file_get_contents (mapped);
  len = g_mapped_file_get_length (mapped);
  if (len < 10 || memcmp (p, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: not a .npy file (no \\x93NUMPY magic)", path);
    goto out;
  }
  /* Version 3 only allows UTF-8 in the header, which the dict parser refuses
   * anyway outside strings. */
  if (p[6] < 1 || p[6] > 3) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "%s: .npy format version %u.%u is not supported", path, p[6],
                 p[7]);
    goto out;
  }
  if (p[6] == 1) {
    header_len = p[8] | (size_t)p[9] << 8;
    start = 10;
  } else {
    if (len < 12) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: .npy file ends inside the header length", path);
      goto out;
    }
    header_len
        = p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
    start = 12;
  }
  if (header_len > len - start) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: .npy header length %zu exceeds the file", path,
                 header_len);
    goto out;
  }
  lx.s = (const char *)p + start;
  lx.n = header_len;
  if (!parse_header (&lx, &descr, &fortran, ndim, shape, error))
    goto out;

  if (strcmp (descr, "<f4") == 0) {
    itemsize = 4;
  } else if (strcmp (descr, "<f8") == 0) {
    itemsize = 8;
  } else {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "%s: .npy 'descr' is '%s'; only '<f4' and '<f8' are supported",
                 path, descr);
    goto out;
  }
  if (fortran) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "%s: .npy 'fortran_order' is True; save a C-order array "
                 "(numpy.ascontiguousarray)",
                 path);
    goto out;
  }
  for (int i = 0; i < *ndim; i++) {
    if (shape[i] == 0) {
      numel = 0;
      break;
    }
  }
  for (int i = 0; i < *ndim && numel; i++) {
    if (numel > G_MAXINT64 / (int64_t)itemsize / shape[i]) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: .npy 'shape' is too large for 64 bits", path);
      goto out;
    }
    numel *= shape[i];
  }
  if ((guint64)(len - start - header_len) != (guint64)numel * itemsize) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: .npy data is %" G_GSIZE_FORMAT
                 " bytes but 'shape' and 'descr' need %" G_GUINT64_FORMAT,
                 path, len - start - header_len, (guint64)numel * itemsize);
    goto out;
  }

  /* The data follows a 64-aligned header in files np.save writes, but not
   * necessarily in others: read through memcpy. */
  p += start + header_len;
  out = g_new (float, MAX (numel, 1));
  for (int64_t i = 0; i < numel; i++) {
    if (itemsize == 4) {
      guint32 bits;
      memcpy (&bits, p + 4 * i, 4);
      bits = GUINT32_FROM_LE (bits);
      memcpy (&out[i], &bits, 4);
    } else {
      guint64 bits;
      double d;
      memcpy (&bits, p + 8 * i, 8);
      bits = GUINT64_FROM_LE (bits);
      memcpy (&d, &bits, 8);
      out[i] = (float)d;
    }
  }

out:
  g_free (descr);
  g_mapped_file_unref (mapped);
  return out;
}

gboolean
ee_npy_write_f32 (const char *path, const float *data, int ndim,
                  const int64_t *shape, GError **error)
{
  GString *h;
  GError *err = NULL;
  int64_t numel = 1;
  size_t pad, total;
  guint8 *buf;
  gboolean ok;

  if (ndim < 0 || ndim > EE_MAX_DIMS) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s: %d dimensions; .npy output supports 0 to %d", path, ndim,
                 EE_MAX_DIMS);
    return FALSE;
  }
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                   "%s: shape entry %d is negative (%" G_GINT64_FORMAT ")",
                   path, i, shape[i]);
      return FALSE;
    }
    if (shape[i] == 0)
      numel = 0;
  }
  for (int i = 0; i < ndim && numel; i++) {
    if (numel > G_MAXINT64 / 4 / shape[i]) {
      g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                   "%s: shape is too large for 64 bits", path);
      return FALSE;
    }
    numel *= shape[i];
  }
  if (numel > 0 && !data) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT, "%s: no data", path);
    return FALSE;
  }

  /* The dict exactly as np.save writes it: sorted keys, Python's tuple repr,
   * then spaces for the first axis to grow to NPY_GROWTH_DIGITS digits. */
  h = g_string_new ("{'descr': '<f4', 'fortran_order': False, 'shape': (");
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (h, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append (h, ndim == 1 ? ",), }" : "), }");
  if (ndim > 0) {
    char *first = g_strdup_printf ("%" G_GINT64_FORMAT, shape[0]);
    for (size_t k = strlen (first); k < NPY_GROWTH_DIGITS; k++)
      g_string_append_c (h, ' ');
    g_free (first);
  }
  /* Spaces and a newline up to the alignment; at least the newline. */
  pad = NPY_ALIGN - (NPY_MAGIC_LEN + 2 + 2 + h->len + 1) % NPY_ALIGN;
  for (size_t k = 0; k < pad; k++)
    g_string_append_c (h, ' ');
  g_string_append_c (h, '\n');

  total = NPY_MAGIC_LEN + 4 + h->len + (size_t)numel * 4;
  buf = g_malloc (total);
  memcpy (buf, NPY_MAGIC "\x01\x00", NPY_MAGIC_LEN + 2);
  buf[8] = h->len & 0xff;
  buf[9] = h->len >> 8;
  memcpy (buf + 10, h->str, h->len);
  for (int64_t i = 0; i < numel; i++) {
    guint32 bits;
    memcpy (&bits, &data[i], 4);
    bits = GUINT32_TO_LE (bits);
    memcpy (buf + 10 + h->len + 4 * i, &bits, 4);
  }
  g_string_free (h, TRUE);

  ok = g_file_set_contents (path, (const char *)buf, total, &err);
  if (!ok) {
    g_set_error (error, EE_ERROR, EE_ERROR_FILE, "%s", err->message);
    g_error_free (err);
  }
  g_free (buf);
  return ok;
}
