/* gst-earlyexit: tests of the model-file readers (safetensors, .npy).
 *
 * Each malformed header is built in memory and must be refused with
 * EE_ERROR_FORMAT (EE_ERROR_UNSUPPORTED for well-formed files asking for what
 * the runtime does not do) and a message naming the file and the offending
 * field. Files written by the project's Python writer and by numpy must read
 * back exactly. The Python side needs $EE_PYTHON (the interpreter meson found)
 * and $EE_SOURCE_ROOT; without them those tests are skipped. */
#include "ee-npy.h"
#include "ee-safetensors.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#define FILE_NAME "test.safetensors"

/* A safetensors image: the header length, `json` with each ` turned into a
 * double quote (so the cases below read without escapes), then `data_len`
 * bytes of a counting pattern. */
static GBytes *
make_image (const char *json, gsize data_len)
{
  gsize hl = strlen (json);
  guint8 *buf = g_malloc (8 + hl + data_len);

  for (int i = 0; i < 8; i++)
    buf[i] = (guint64)hl >> (8 * i);
  for (gsize i = 0; i < hl; i++)
    buf[8 + i] = json[i] == '`' ? '"' : json[i];
  for (gsize i = 0; i < data_len; i++)
    buf[8 + hl + i] = i * 7;
  return g_bytes_new_take (buf, 8 + hl + data_len);
}

/* Asserts that `bytes` is refused with `code` and a message that names the
 * file and contains `needle` (and `needle2` if given). */
static void
assert_refused (GBytes *bytes, int code, const char *needle,
                const char *needle2)
{
  GError *error = NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  EeSafetensors *st
      = ee_safetensors_new_from_data (data, len, FILE_NAME, &error);

  g_assert_null (st);
  g_assert_error (error, EE_ERROR, code);
  g_test_message ("refused: %s", error->message);
  g_assert_true (g_str_has_prefix (error->message, FILE_NAME ": "));
  g_assert_nonnull (strstr (error->message, needle));
  if (needle2)
    g_assert_nonnull (strstr (error->message, needle2));
  g_error_free (error);
}

static EeSafetensors *
open_image (GBytes *bytes)
{
  GError *error = NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  EeSafetensors *st
      = ee_safetensors_new_from_data (data, len, FILE_NAME, &error);

  g_assert_no_error (error);
  g_assert_nonnull (st);
  return st;
}

typedef struct
{
  const char *path; /* test path under /safetensors/refuse/ */
  const char *json; /* ` stands for " */
  gsize data_len;
  int code;
  const char *needle, *needle2;
} Refusal;

#define ENTRY(dtype, shape, offsets)                                           \
  "{`dtype`: `" dtype "`, `shape`: " shape ", `data_offsets`: " offsets "}"
#define ONE(name, entry) "{`" name "`: " entry "}"
#define W(dtype, shape, offsets) ONE ("w", ENTRY (dtype, shape, offsets))
#define F EE_ERROR_FORMAT

static const Refusal refusals[] = {
  /* JSON that is not, or that json-glib would misread */
  { "json/truncated", "{`w`: ", 0, F, "JSON header" },
  { "json/trailing-garbage", "{} x", 0, F, "JSON header" },
  { "json/single-quotes", "{'w': {}}", 0, F, "JSON header" },
  { "json/comment", "{}/* c */", 0, F, "JSON header" },
  /* json-glib would read a sequence of documents and keep the last */
  { "json/two-values", "{}{`w`: 1}", 0, F, "after the JSON value" },
  { "json/two-values-spaced", "{`a`: 1} \n []", 0, F, "after the JSON value" },
  { "json/value-then-comma", "{} ,", 0, F, "after the JSON value" },
  { "json/scalar-then-object", "1 {}", 0, F, "after the JSON value" },
  { "json/trailing-comma", "{`w`: 1,}", 0, F, "JSON header" },
  { "json/leading-zero", W ("F32", "[01]", "[0, 4]"), 4, F, "leading zero" },
  { "json/hex", W ("F32", "[0x1]", "[0, 4]"), 4, F, "JSON header" },
  { "json/bare-word", "{`w`: nope}", 0, F, "JSON header" },
  { "json/form-feed", "{\f}", 0, F, "JSON header" },
  /* json-glib alone would wrap this to 1 and accept the tensor */
  { "json/integer-above-int64", W ("F32", "[18446744073709551617]", "[0, 4]"),
    4, F, "64-bit range" },
  { "json/integer-below-int64", W ("F32", "[-9223372036854775809]", "[0, 4]"),
    4, F, "64-bit range" },
  { "json/nul-escape", ONE ("a\\u0000b", ENTRY ("F32", "[1]", "[0, 4]")), 4, F,
    "\\u0000" },
  { "json/lone-surrogate", ONE ("\\ud800", ENTRY ("F32", "[1]", "[0, 4]")), 4,
    F, "surrogate" },
  { "json/bad-escape", ONE ("\\x41", ENTRY ("F32", "[1]", "[0, 4]")), 4, F,
    "escape" },
  { "json/control-char", ONE ("a\tb", ENTRY ("F32", "[1]", "[0, 4]")), 4, F,
    "control character" },
  { "json/unterminated-string", "{`w", 0, F, "unterminated" },
  { "json/not-object", "[1, 2]", 0, F, "not an object" },
  { "json/string", "`w`", 0, F, "not an object" },
  { "json/empty", "", 0, F, "not an object" },
  { "json/blank", "   ", 0, F, "not an object" },
  /* tensor entries */
  { "entry/not-object", "{`w`: 5}", 0, F, "\"w\"", "not an object" },
  { "entry/missing-dtype", ONE ("w", "{`shape`: [1], `data_offsets`: [0, 4]}"),
    4, F, "\"w\"", "dtype" },
  { "entry/missing-shape",
    ONE ("w", "{`dtype`: `F32`, `data_offsets`: [0, 4]}"), 4, F, "\"w\"",
    "shape" },
  { "entry/missing-data-offsets", ONE ("w", "{`dtype`: `F32`, `shape`: [1]}"),
    4, F, "\"w\"", "data_offsets" },
  { "entry/extra-member",
    ONE ("w",
         "{`dtype`: `F32`, `shape`: [1], `data_offsets`: [0, 4], `foo`: 1}"),
    4, F, "\"w\"", "foo" },
  { "dtype/not-string",
    ONE ("w", "{`dtype`: 4, `shape`: [1], `data_offsets`: [0, 4]}"), 4, F,
    "\"w\"", "dtype" },
  { "dtype/unknown", W ("Q4", "[1]", "[0, 4]"), 4, F, "dtype", "Q4" },
  { "dtype/lower-case", W ("f32", "[1]", "[0, 4]"), 4, F, "dtype", "f32" },
  { "shape/not-array", W ("F32", "4", "[0, 4]"), 4, F, "\"w\"", "shape" },
  { "shape/negative", W ("F32", "[-1, 2]", "[0, 8]"), 8, F, "shape",
    "negative" },
  { "shape/float", W ("F32", "[2.0]", "[0, 8]"), 8, F, "shape", "integer" },
  { "shape/exponent", W ("F32", "[2e0]", "[0, 8]"), 8, F, "shape", "integer" },
  { "shape/bool", W ("F32", "[true]", "[0, 4]"), 4, F, "shape", "integer" },
  { "shape/string", W ("F32", "[`2`]", "[0, 8]"), 8, F, "shape", "integer" },
  { "shape/null", W ("F32", "[null]", "[0, 4]"), 4, F, "shape", "integer" },
  { "shape/nested", W ("F32", "[[2]]", "[0, 8]"), 8, F, "shape", "integer" },
  { "shape/too-many-dims", W ("F32", "[1, 1, 1, 1, 1, 1, 1, 1, 1]", "[0, 4]"),
    4, F, "shape", "dimensions" },
  { "shape/numel-overflow", W ("F32", "[4294967296, 4294967296, 4]", "[0, 4]"),
    4, F, "shape", "64 bits" },
  { "shape/bytes-overflow", W ("F32", "[4611686018427387904]", "[0, 4]"), 4, F,
    "data_offsets", "F32 [4611686018427387904] needs more than 2^63" },
  { "data-offsets/not-array", W ("F32", "[1]", "4"), 4, F, "data_offsets" },
  { "data-offsets/one", W ("F32", "[1]", "[4]"), 4, F, "data_offsets" },
  { "data-offsets/three", W ("F32", "[1]", "[0, 4, 8]"), 8, F, "data_offsets" },
  { "data-offsets/float", W ("F32", "[1]", "[0, 4.0]"), 4, F, "data_offsets" },
  { "data-offsets/negative", W ("F32", "[1]", "[-4, 0]"), 4, F, "data_offsets",
    "negative" },
  { "data-offsets/beyond-data", W ("F32", "[30]", "[0, 120]"), 100, F,
    "data_offsets", "100-byte data section" },
  { "data-offsets/begin-after-end", W ("F32", "[0]", "[8, 0]"), 8, F,
    "data_offsets", "begins after it ends" },
  { "data-offsets/size-mismatch",
    ONE ("conv1.weight", ENTRY ("F32", "[5, 6]", "[0, 100]")), 120, F,
    FILE_NAME ": tensor \"conv1.weight\": data_offsets [0, 100] give 100 bytes "
              "but F32 [5, 6] needs 120" },
  { "data-offsets/size-mismatch-f16", W ("F16", "[4]", "[0, 16]"), 16, F,
    "data_offsets", "F16 [4] needs 8" },
  { "data-offsets/size-mismatch-scalar", W ("F32", "[]", "[0, 8]"), 8, F,
    "data_offsets", "F32 [] needs 4" },
  { "overlap/partial",
    "{`a`: " ENTRY ("F32", "[16]", "[0, 64]") ", `b`: " ENTRY ("F32", "[16]",
                                                               "[32, 96]") "}",
    96, F, "\"a\"", "\"b\"" },
  { "overlap/contained",
    "{`a`: " ENTRY ("F32", "[24]", "[0, 96]") ", `b`: " ENTRY ("F32", "[4]",
                                                               "[16, 32]") "}",
    96, F, "\"b\"", "overlap" },
  { "overlap/same-range",
    "{`b`: " ENTRY ("F16", "[2]", "[4, 8]") ", `a`: " ENTRY ("BF16", "[2]",
                                                             "[4, 8]") "}",
    8, F, "\"a\"", "\"b\"" },
  { "metadata/not-object", "{`__metadata__`: [`x`]}", 0, F, "__metadata__" },
  { "metadata/int-value", "{`__metadata__`: {`k`: `v`, `n`: 3}}", 0, F,
    "__metadata__", "\"n\"" },
  { "metadata/null-value", "{`__metadata__`: {`k`: null}}", 0, F,
    "__metadata__", "\"k\"" },
  { "metadata/object-value", "{`__metadata__`: {`k`: {}}}", 0, F,
    "__metadata__", "\"k\"" },
  { "duplicate/tensor",
    "{`w`: " ENTRY ("F32", "[1]", "[0, 4]") ", `w`: " ENTRY ("F32", "[1]",
                                                             "[4, 8]") "}",
    8, F, "\"w\"", "twice" },
  { "duplicate/member",
    ONE ("w", "{`dtype`: `F32`, `dtype`: `F16`, `shape`: [1], `data_offsets`: "
              "[0, 4]}"),
    4, F, "dtype", "twice" },
  { "duplicate/metadata-key", "{`__metadata__`: {`k`: `1`, `k`: `2`}}", 0, F,
    "__metadata__", "\"k\"" },
  { "duplicate/metadata", "{`__metadata__`: {}, `__metadata__`: {}}", 0, F,
    "\"__metadata__\" appears twice" },
  /* well formed but not computable */
  { "unsupported/i64",
    "{`a`: " ENTRY ("F32", "[1]", "[0, 4]") ", `steps`: " ENTRY ("I64", "[2]",
                                                                 "[4, 20]") "}",
    20, EE_ERROR_UNSUPPORTED, "\"steps\"", "I64" },
  { "unsupported/f64", W ("F64", "[2]", "[0, 16]"), 16, EE_ERROR_UNSUPPORTED,
    "\"w\"", "F64" },
  /* a malformed file is reported as malformed, not as unsupported */
  { "unsupported/and-malformed",
    "{`a`: " ENTRY ("I64", "[2]", "[0, 16]") ", `b`: " ENTRY ("F32", "[4]",
                                                              "[8, 24]") "}",
    24, F, "overlap" },
  { "unsupported/size-checked", W ("I64", "[2]", "[0, 8]"), 8, F,
    "data_offsets", "I64 [2] needs 16" },
};

static void
test_refusal (gconstpointer data)
{
  const Refusal *r = data;
  GBytes *bytes = make_image (r->json, r->data_len);

  assert_refused (bytes, r->code, r->needle, r->needle2);
  g_bytes_unref (bytes);
}

static void
test_too_short (void)
{
  static const guint8 zeros[8] = { 0 };
  GError *error = NULL;

  for (gsize len = 0; len < 8; len++) {
    GBytes *bytes = g_bytes_new_static (zeros, len);
    assert_refused (bytes, F, "8-byte header length", NULL);
    g_bytes_unref (bytes);
  }
  g_assert_null (ee_safetensors_new_from_data (NULL, 0, FILE_NAME, &error));
  g_assert_error (error, EE_ERROR, F);
  g_error_free (error);
}

/* A header length field other than the JSON's own length. */
static GBytes *
image_with_length (guint64 header_len, gsize total)
{
  guint8 *buf = g_malloc0 (MAX (total, 8));

  for (int i = 0; i < 8; i++)
    buf[i] = header_len >> (8 * i);
  memset (buf + 8, ' ', total - 8);
  buf[8] = '{';
  buf[9] = '}';
  return g_bytes_new_take (buf, total);
}

static void
test_header_length_beyond_file (void)
{
  GBytes *bytes = image_with_length (51, 58);

  assert_refused (bytes, F, "header length 51", "50 bytes");
  g_bytes_unref (bytes);
}

static void
test_header_length_overflow (void)
{
  /* 8 + length wraps to a small number with these. */
  const guint64 lengths[]
      = { G_MAXUINT64, G_MAXUINT64 - 7, G_MAXUINT64 - 1, (guint64)1 << 63 };

  for (guint i = 0; i < G_N_ELEMENTS (lengths); i++) {
    GBytes *bytes = image_with_length (lengths[i], 64);
    assert_refused (bytes, F, "header length", NULL);
    g_bytes_unref (bytes);
  }
}

static void
test_header_bytes (void)
{
  GBytes *bytes;

  bytes = make_image ("{`w\xff`: {}}", 0);
  assert_refused (bytes, F, "UTF-8", NULL);
  g_bytes_unref (bytes);

  /* A raw NUL would end the string json-glib sees. */
  bytes = make_image ("{}  ", 0);
  ((guint8 *)g_bytes_get_data (bytes, NULL))[10] = 0;
  assert_refused (bytes, F, "NUL", NULL);
  g_bytes_unref (bytes);
}

/* Unbounded nesting overflows json-glib's recursive parser's stack. */
static void
test_nested_too_deep (void)
{
  GString *json = g_string_new ("{`w`: ");
  GBytes *bytes;

  for (int i = 0; i < 100000; i++)
    g_string_append_c (json, '[');
  bytes = make_image (json->str, 0);
  assert_refused (bytes, F, "nested too deep", NULL);
  g_bytes_unref (bytes);
  g_string_free (json, TRUE);
}

static void
test_valid_empty (void)
{
  GBytes *bytes = make_image ("{}", 0);
  EeSafetensors *st = open_image (bytes);
  const char **keys = ee_safetensors_metadata_keys (st);

  g_assert_cmpuint (ee_safetensors_n_tensors (st), ==, 0);
  g_assert_null (keys[0]);
  g_assert_null (ee_safetensors_find (st, "w"));
  g_assert_cmpstr (ee_safetensors_path (st), ==, FILE_NAME);
  g_free (keys);
  ee_safetensors_free (st);
}

/* Layout, order, shapes and unaligned data of a hand-made valid file. The
 * header is 7 bytes longer than a multiple of 8, so no tensor is aligned. */
static void
test_valid_layout (void)
{
  const char *json
      = "{`b`: " ENTRY ("F32", "[2, 3]", "[4, 28]") ", `a`: " ENTRY (
          "F32", "[]",
          "[0, 4]") ", `empty`: " ENTRY ("F16", "[0, 9223372036854775807]",
                                         "[28, 28]") ", `caf\\u00e9 "
                                                     "\\ud83d\\ude00`:"
                                                     " " ENTRY ("BF16", "[1]",
                                                                "[28, "
                                                                "30]") ","
                                                                       " "
                                                                       "`"
                                                                       "_"
                                                                       "_"
                                                                       "m"
                                                                       "e"
                                                                       "t"
                                                                       "a"
                                                                       "d"
                                                                       "a"
                                                                       "t"
                                                                       "a"
                                                                       "_"
                                                                       "_"
                                                                       "`"
                                                                       ":"
                                                                       " "
                                                                       "{"
                                                                       "`"
                                                                       "v"
                                                                       "e"
                                                                       "r"
                                                                       "s"
                                                                       "i"
                                                                       "o"
                                                                       "n"
                                                                       "`"
                                                                       ":"
                                                                       " "
                                                                       "`"
                                                                       "2"
                                                                       "`"
                                                                       ","
                                                                       " "
                                                                       "`"
                                                                       "a"
                                                                       "r"
                                                                       "c"
                                                                       "h"
                                                                       "`"
                                                                       ":"
                                                                       " "
                                                                       "`"
                                                                       "x"
                                                                       "`"
                                                                       "}"
                                                                       "}";
  GString *padded = g_string_new (json);
  GBytes *bytes;
  EeSafetensors *st;
  const EeStTensor *t;
  guint8 *data;
  float v[6];
  const float want[6] = { 1.5f, -2.0f, 0.0f, 1e-30f, 65504.0f, -1e30f };

  while ((padded->len + 8) % 8 != 7)
    g_string_append_c (padded, ' ');
  bytes = make_image (padded->str, 40);
  data = (guint8 *)g_bytes_get_data (bytes, NULL) + 8 + padded->len;
  for (int i = 0; i < 6; i++) {
    guint32 bits;
    memcpy (&bits, &want[i], 4);
    bits = GUINT32_TO_LE (bits);
    memcpy (data + 4 + 4 * i, &bits, 4);
  }
  st = open_image (bytes);

  g_assert_cmpuint (ee_safetensors_n_tensors (st), ==, 4);
  /* data-offset order; the empty tensor before the one at the same offset */
  g_assert_cmpstr (ee_safetensors_tensor (st, 0)->name, ==, "a");
  g_assert_cmpstr (ee_safetensors_tensor (st, 1)->name, ==, "b");
  g_assert_cmpstr (ee_safetensors_tensor (st, 2)->name, ==, "empty");
  g_assert_cmpstr (ee_safetensors_tensor (st, 3)->name, ==,
                   "caf\xc3\xa9 \xf0\x9f\x98\x80");

  t = ee_safetensors_find (st, "a");
  g_assert_cmpint (t->ndim, ==, 0);
  g_assert_cmpint (t->numel, ==, 1);
  g_assert_true ((const guint8 *)t->data == data);
  t = ee_safetensors_find (st, "empty");
  g_assert_cmpint (t->numel, ==, 0);
  g_assert_cmpint (t->nbytes, ==, 0);
  t = ee_safetensors_find (st, "b");
  g_assert_cmpint (t->dtype, ==, EE_DTYPE_F32);
  g_assert_cmpint (t->ndim, ==, 2);
  g_assert_cmpint (t->shape[0], ==, 2);
  g_assert_cmpint (t->shape[1], ==, 3);
  g_assert_cmpint (t->numel, ==, 6);
  g_assert_cmpuint (t->nbytes, ==, 24);
  g_assert_cmpuint ((guintptr)t->data % 4, !=, 0);
  ee_st_tensor_to_f32 (t, v);
  g_assert_cmpmem (v, sizeof v, want, sizeof want);
  g_assert_cmpstr (ee_safetensors_metadata (st, "version"), ==, "2");
  g_assert_null (ee_safetensors_metadata (st, "missing"));
  ee_safetensors_free (st);
  g_string_free (padded, TRUE);
  g_bytes_unref (bytes);
}

static void
test_metadata_keys (void)
{
  GBytes *bytes = make_image (
      "{`__metadata__`: {`zeta`: `1`, `alpha`: ``, `mid`: `m`}}", 0);
  EeSafetensors *st = open_image (bytes);
  const char **keys = ee_safetensors_metadata_keys (st);

  g_assert_cmpstr (keys[0], ==, "alpha");
  g_assert_cmpstr (keys[1], ==, "mid");
  g_assert_cmpstr (keys[2], ==, "zeta");
  g_assert_null (keys[3]);
  g_assert_cmpstr (ee_safetensors_metadata (st, "alpha"), ==, "");
  g_free (keys);
  ee_safetensors_free (st);
  g_bytes_unref (bytes);
}

static void
test_get_checked (void)
{
  GBytes *bytes = make_image (W ("F32", "[2, 3]", "[0, 24]"), 24);
  EeSafetensors *st = open_image (bytes);
  const int64_t right[] = { 2, 3 }, wrong[] = { 3, 2 };
  GError *error = NULL;

  g_assert_true (ee_safetensors_get_checked (st, "w", 2, right, &error)
                 == ee_safetensors_find (st, "w"));
  g_assert_no_error (error);

  g_assert_null (ee_safetensors_get_checked (st, "w", 2, wrong, &error));
  g_assert_error (error, EE_ERROR, F);
  g_assert_nonnull (
      strstr (error->message, "\"w\" has shape [2, 3], expected [3, 2]"));
  g_clear_error (&error);

  g_assert_null (ee_safetensors_get_checked (st, "w", 1, right, &error));
  g_assert_error (error, EE_ERROR, F);
  g_assert_nonnull (strstr (error->message, "[2, 3], expected [2]"));
  g_clear_error (&error);

  g_assert_null (ee_safetensors_get_checked (st, "v", 2, right, &error));
  g_assert_error (error, EE_ERROR, F);
  g_assert_nonnull (strstr (error->message, "\"v\" is missing"));
  g_clear_error (&error);

  g_assert_null (ee_safetensors_get_checked (st, "w", 9, right, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&error);
  ee_safetensors_free (st);
  g_bytes_unref (bytes);
}

static guint16
le16 (guint16 v)
{
  return GUINT16_TO_LE (v);
}

/* Hand-checked halves: subnormals, the normal range's ends, infinities, NaN,
 * negative zero. */
static void
test_f16_values (void)
{
  const struct
  {
    guint16 bits;
    float value;
  } cases[] = {
    { 0x0000, 0.0f },
    { 0x0001, 0x1p-24f },
    { 0x0002, 0x1p-23f },
    { 0x0155, 341 * 0x1p-24f },
    { 0x03ff, 1023 * 0x1p-24f },
    { 0x0400, 0x1p-14f },
    { 0x3c00, 1.0f },
    { 0x3c01, 1.0f + 0x1p-10f },
    { 0x3555, 0x1.554p-2f },
    { 0xc000, -2.0f },
    { 0x7bff, 65504.0f },
    { 0xfbff, -65504.0f },
    { 0x8001, -0x1p-24f },
    { 0x7c00, INFINITY },
    { 0xfc00, -INFINITY },
  };
  GBytes *bytes = make_image (W ("F16", "[18]", "[0, 36]"), 36);
  guint8 *data = (guint8 *)g_bytes_get_data (bytes, NULL) + 8
                 + strlen (W ("F16", "[18]", "[0, 36]"));
  const guint16 extra[3] = { 0x8000, 0x7e00, 0xfd01 };
  float v[18];
  EeSafetensors *st;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    guint16 h = le16 (cases[i].bits);
    memcpy (data + 2 * i, &h, 2);
  }
  for (guint i = 0; i < 3; i++) {
    guint16 h = le16 (extra[i]);
    memcpy (data + 2 * (15 + i), &h, 2);
  }
  st = open_image (bytes);
  ee_st_tensor_to_f32 (ee_safetensors_find (st, "w"), v);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpmem (&v[i], 4, &cases[i].value, 4);
  g_assert_true (v[15] == 0.0f && signbit (v[15]));
  g_assert_true (isnan (v[16]) && !signbit (v[16]));
  g_assert_true (isnan (v[17]) && signbit (v[17]));
  ee_safetensors_free (st);
  g_bytes_unref (bytes);
}

/* bfloat16 is a float's upper half: every pattern, NaNs included, must come
 * back bit for bit. */
static void
test_bf16_exact (void)
{
  const char *json = W ("BF16", "[65536]", "[0, 131072]");
  GBytes *bytes = make_image (json, 131072);
  guint8 *data = (guint8 *)g_bytes_get_data (bytes, NULL) + 8 + strlen (json);
  float *v = g_new (float, 65536);
  EeSafetensors *st;

  for (guint32 p = 0; p < 65536; p++) {
    guint16 h = le16 (p);
    memcpy (data + 2 * p, &h, 2);
  }
  st = open_image (bytes);
  ee_st_tensor_to_f32 (ee_safetensors_find (st, "w"), v);
  for (guint32 p = 0; p < 65536; p++) {
    guint32 bits;
    memcpy (&bits, &v[p], 4);
    g_assert_cmphex (bits, ==, p << 16);
  }
  g_free (v);
  ee_safetensors_free (st);
  g_bytes_unref (bytes);
}

static void
test_open_missing (void)
{
  GError *error = NULL;

  g_assert_null (
      ee_safetensors_open ("/nonexistent/model.safetensors", &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_FILE);
  g_assert_nonnull (strstr (error->message, "model.safetensors"));
  g_clear_error (&error);

  g_assert_null (ee_safetensors_open ("/", &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_FILE);
  g_clear_error (&error);
}

static char *
write_temp (const char *dir, const char *name, const void *data, gsize len)
{
  char *path = g_build_filename (dir, name, NULL);
  GError *error = NULL;

  g_file_set_contents (path, data, len, &error);
  g_assert_no_error (error);
  return path;
}

/* Refusals through ee_safetensors_open: an empty file (which maps to no
 * memory at all), a truncated one, and a header length past the 100 MB limit
 * in a sparse file large enough to hold it. */
static void
test_open_malformed (void)
{
  char *dir = g_dir_make_tmp ("ee-modelfile-XXXXXX", NULL);
  GError *error = NULL;
  char *path;
  FILE *f;
  GBytes *bytes;

  path = write_temp (dir, "empty.safetensors", "", 0);
  g_assert_null (ee_safetensors_open (path, &error));
  g_assert_error (error, EE_ERROR, F);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
  g_unlink (path);
  g_free (path);

  bytes = make_image (W ("F32", "[4]", "[0, 16]"), 12);
  path = write_temp (dir, "short.safetensors", g_bytes_get_data (bytes, NULL),
                     g_bytes_get_size (bytes));
  g_assert_null (ee_safetensors_open (path, &error));
  g_assert_error (error, EE_ERROR, F);
  g_assert_nonnull (strstr (error->message, "data_offsets"));
  g_clear_error (&error);
  g_unlink (path);
  g_free (path);
  g_bytes_unref (bytes);

  path = g_build_filename (dir, "huge.safetensors", NULL);
  f = g_fopen (path, "wb");
  g_assert_nonnull (f);
  fwrite ("\x01\xe1\xf5\x05\x00\x00\x00\x00{}", 1, 10, f); /* 100000001 */
  g_assert_cmpint (fseek (f, 100000008, SEEK_SET), ==, 0);
  fputc (' ', f);
  g_assert_cmpint (fclose (f), ==, 0);
  g_assert_null (ee_safetensors_open (path, &error));
  g_assert_error (error, EE_ERROR, F);
  g_assert_nonnull (strstr (error->message, "header length 100000001"));
  g_assert_nonnull (strstr (error->message, "limit"));
  g_clear_error (&error);
  g_unlink (path);
  g_free (path);

  g_rmdir (dir);
  g_free (dir);
}

static void
rm_rf (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d && (name = g_dir_read_name (d))) {
    char *path = g_build_filename (dir, name, NULL);
    g_unlink (path);
    g_free (path);
  }
  if (d)
    g_dir_close (d);
  g_rmdir (dir);
}

/* Runs modelfile-ref.py; FALSE (test skipped) without the Python meson
 * found. */
static gboolean
run_reference (const char *command, const char *dir)
{
  const char *python = g_getenv ("EE_PYTHON");
  const char *root = g_getenv ("EE_SOURCE_ROOT");
  char *script, *convert;
  char *out = NULL, *err = NULL;
  int status;
  GError *error = NULL;

  if (!python || !root) {
    g_test_skip (
        "EE_PYTHON or EE_SOURCE_ROOT not set (run through meson test)");
    return FALSE;
  }
  script
      = g_build_filename (root, "tests", "modelfile", "modelfile-ref.py", NULL);
  convert = g_build_filename (root, "models", "convert", NULL);
  const char *argv[] = { python, script, convert, command, dir, NULL };
  g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out,
                &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("modelfile-ref.py %s failed:\n%s%s", command, out, err);
  g_free (out);
  g_free (err);
  g_free (script);
  g_free (convert);
  return TRUE;
}

/* Exact when both are NaN or both have the same bits: numpy converts halves
 * with F16C where it can, which quiets signalling NaNs. */
static void
assert_same_floats (const float *a, const float *b, int64_t n)
{
  for (int64_t i = 0; i < n; i++) {
    if (isnan (a[i]) && isnan (b[i]))
      continue;
    if (memcmp (&a[i], &b[i], 4) != 0)
      g_error ("element %" G_GINT64_FORMAT ": %a != %a", i, a[i], b[i]);
  }
}

static float *
tensor_f32 (const EeSafetensors *st, const char *name)
{
  const EeStTensor *t = ee_safetensors_find (st, name);
  float *v;

  g_assert_nonnull (t);
  v = g_new (float, MAX (t->numel, 1));
  ee_st_tensor_to_f32 (t, v);
  return v;
}

static void
assert_pair (const EeSafetensors *st, const char *name, const char *ref)
{
  const EeStTensor *t = ee_safetensors_find (st, name);
  const EeStTensor *r = ee_safetensors_find (st, ref);
  float *a = tensor_f32 (st, name), *b = tensor_f32 (st, ref);

  g_assert_cmpint (t->numel, ==, r->numel);
  g_assert_cmpint (r->dtype, ==, EE_DTYPE_F32);
  assert_same_floats (a, b, t->numel);
  g_free (a);
  g_free (b);
}

/* Files from the project's Python writer (F32, F16: every half) and a BF16
 * file converted by torch. */
static void
test_python_written (void)
{
  char *dir = g_dir_make_tmp ("ee-modelfile-XXXXXX", NULL);
  char *path;
  EeSafetensors *st;
  GError *error = NULL;
  const EeStTensor *t;
  const char **keys;
  float *v;

  if (!run_reference ("gen", dir))
    goto out;
  path = g_build_filename (dir, "ref.safetensors", NULL);
  st = ee_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ee_safetensors_path (st), ==, path);
  g_assert_cmpuint (ee_safetensors_n_tensors (st), ==, 5);

  t = ee_safetensors_find (st, "f16_all");
  g_assert_cmpint (t->dtype, ==, EE_DTYPE_F16);
  g_assert_cmpint (t->numel, ==, 65536);
  assert_pair (st, "f16_all", "f16_all_as_f32");
  t = ee_safetensors_find (st, "f16_mat");
  g_assert_cmpint (t->ndim, ==, 2);
  g_assert_cmpint (t->shape[0], ==, 7);
  g_assert_cmpint (t->shape[1], ==, 3);
  assert_pair (st, "f16_mat", "f16_mat_as_f32");

  t = ee_safetensors_get_checked (st, "f32_cube", 3,
                                  (const int64_t[]){ 3, 4, 5 }, &error);
  g_assert_no_error (error);
  v = tensor_f32 (st, "f32_cube");
  for (int i = 0; i < 60; i++)
    g_assert_cmpfloat (v[i], ==, i / 8.0f - 3);
  g_free (v);

  keys = ee_safetensors_metadata_keys (st);
  g_assert_cmpstr (keys[0], ==, "arch");
  g_assert_cmpstr (keys[1], ==, "format_version");
  g_assert_cmpstr (keys[2], ==, "n_classes");
  g_assert_null (keys[3]);
  g_free (keys);
  g_assert_cmpstr (ee_safetensors_metadata (st, "format_version"), ==, "1");
  g_assert_cmpstr (ee_safetensors_metadata (st, "n_classes"), ==, "3");
  ee_safetensors_free (st);
  g_free (path);

  path = g_build_filename (dir, "bf16.safetensors", NULL);
  st = ee_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ee_safetensors_find (st, "bf16_all")->dtype, ==,
                   EE_DTYPE_BF16);
  assert_pair (st, "bf16_all", "bf16_all_as_f32");
  ee_safetensors_free (st);
  g_free (path);

out:
  rm_rf (dir);
  g_free (dir);
}

static float
npy_value (int64_t i)
{
  return i * 0.5f - 1;
}

static float *
read_npy (const char *dir, const char *name, int *ndim, int64_t *shape,
          GError **error)
{
  char *path = g_build_filename (dir, name, NULL);
  float *v = ee_npy_read_f32 (path, ndim, shape, error);

  g_free (path);
  return v;
}

static void
assert_npy_refused (const char *dir, const char *name, int code,
                    const char *needle)
{
  GError *error = NULL;
  int ndim;
  int64_t shape[EE_MAX_DIMS];

  g_assert_null (read_npy (dir, name, &ndim, shape, &error));
  g_assert_error (error, EE_ERROR, code);
  g_test_message ("refused: %s", error->message);
  g_assert_nonnull (strstr (error->message, name));
  g_assert_nonnull (strstr (error->message, needle));
  g_error_free (error);
}

/* numpy's files read back; what the reader does not do is refused. */
static void
test_npy_from_numpy (void)
{
  char *dir = g_dir_make_tmp ("ee-modelfile-XXXXXX", NULL);
  GError *error = NULL;
  int ndim;
  int64_t shape[EE_MAX_DIMS];
  float *v;

  if (!run_reference ("gen", dir))
    goto out;
  v = read_npy (dir, "py_f4.npy", &ndim, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ndim, ==, 3);
  g_assert_cmpint (shape[0], ==, 2);
  g_assert_cmpint (shape[1], ==, 3);
  g_assert_cmpint (shape[2], ==, 4);
  for (int i = 0; i < 24; i++)
    g_assert_cmpfloat (v[i], ==, npy_value (i));
  g_free (v);

  v = read_npy (dir, "py_f8.npy", &ndim, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ndim, ==, 1);
  g_assert_cmpint (shape[0], ==, 5);
  for (int i = 0; i < 5; i++)
    g_assert_cmpfloat (v[i], ==, (float)((i + 1) * 0.1));
  g_free (v);

  v = read_npy (dir, "py_scalar.npy", &ndim, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ndim, ==, 0);
  g_assert_cmpfloat (v[0], ==, 2.5f);
  g_free (v);

  v = read_npy (dir, "py_empty.npy", &ndim, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ndim, ==, 2);
  g_assert_cmpint (shape[0], ==, 0);
  g_assert_cmpint (shape[1], ==, 7);
  g_free (v);

  assert_npy_refused (dir, "py_fortran.npy", EE_ERROR_UNSUPPORTED,
                      "fortran_order");
  assert_npy_refused (dir, "py_big_endian.npy", EE_ERROR_UNSUPPORTED, ">f4");
  assert_npy_refused (dir, "py_int32.npy", EE_ERROR_UNSUPPORTED, "<i4");
  assert_npy_refused (dir, "py_5d.npy", EE_ERROR_UNSUPPORTED, "shape");
out:
  rm_rf (dir);
  g_free (dir);
}

/* The writer's files load in numpy and equal np.save's byte for byte; they
 * also read back here. */
static void
test_npy_to_numpy (void)
{
  const struct
  {
    const char *name;
    int ndim;
    int64_t shape[EE_MAX_DIMS];
  } files[] = {
    { "c_4d.npy", 4, { 2, 3, 4, 5 } },
    { "c_1d.npy", 1, { 3 } },
    { "c_scalar.npy", 0, { 0 } },
    { "c_empty.npy", 2, { 0, 7 } },
  };
  char *dir = g_dir_make_tmp ("ee-modelfile-XXXXXX", NULL);
  float data[120];
  GError *error = NULL;

  for (int i = 0; i < 120; i++)
    data[i] = npy_value (i);
  for (guint f = 0; f < G_N_ELEMENTS (files); f++) {
    char *path = g_build_filename (dir, files[f].name, NULL);
    int ndim;
    int64_t shape[EE_MAX_DIMS], numel = 1;
    float *v;

    g_assert_true (
        ee_npy_write_f32 (path, data, files[f].ndim, files[f].shape, &error));
    g_assert_no_error (error);
    v = ee_npy_read_f32 (path, &ndim, shape, &error);
    g_assert_no_error (error);
    g_assert_cmpint (ndim, ==, files[f].ndim);
    for (int i = 0; i < ndim; i++) {
      g_assert_cmpint (shape[i], ==, files[f].shape[i]);
      numel *= shape[i];
    }
    g_assert_cmpmem (v, numel * 4, data, numel * 4);
    g_free (v);
    g_free (path);
  }
  run_reference ("check-npy", dir);
  rm_rf (dir);
  g_free (dir);
}

/* A .npy image: magic, version, header length (2 bytes in version 1, else
 * 4), the dict as given, then `data_len` zero bytes. */
static char *
write_npy (const char *dir, const char *name, int major, const char *dict,
           gsize data_len)
{
  GByteArray *b = g_byte_array_new ();
  guint8 prefix[12] = { 0x93, 'N', 'U', 'M', 'P', 'Y', major, 0 };
  gsize dl = strlen (dict);
  guint8 *zeros = g_malloc0 (data_len + 1);
  char *path;

  for (int i = 0; i < (major == 1 ? 2 : 4); i++)
    prefix[8 + i] = dl >> (8 * i);
  g_byte_array_append (b, prefix, major == 1 ? 10 : 12);
  g_byte_array_append (b, (const guint8 *)dict, dl);
  g_byte_array_append (b, zeros, data_len);
  path = write_temp (dir, name, b->data, b->len);
  g_byte_array_unref (b);
  g_free (zeros);
  return path;
}

static void
test_npy_malformed (void)
{
  const struct
  {
    const char *name;
    int major;
    const char *dict;
    gsize data_len;
    int code;
    const char *needle;
  } cases[] = {
    { "version-4", 4,
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", 4,
      EE_ERROR_UNSUPPORTED, "version 4" },
    { "short-data", 1,
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 20, F,
      "need 24" },
    { "long-data", 1,
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 28, F,
      "need 24" },
    { "missing-shape", 1, "{'descr': '<f4', 'fortran_order': False}", 4, F,
      "'shape'" },
    { "unknown-key", 1,
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4, F,
      "'x'" },
    { "duplicate-key", 1,
      "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
      4, F, "'descr' twice" },
    { "garbage-after", 1,
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", 4, F,
      "padding" },
    { "negative-shape", 1,
      "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", 4, F,
      "non-negative integer" },
    { "shape-overflow", 1,
      "{'descr': '<f4', 'fortran_order': False, 'shape': "
      "(9223372036854775808,)}",
      4, F, "below 2^63" },
    { "numel-overflow", 1,
      "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, "
      "4294967296)}",
      4, F, "64 bits" },
    { "shape-list", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': [1]}",
      4, F, "'('" },
    { "fortran-not-bool", 1,
      "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", 4, F,
      "True or False" },
    { "unterminated", 1, "{'descr': '<f4", 4, F, "end of the string" },
    { "escape", 1, "{'descr': '<f\\4', 'fortran_order': False, 'shape': (1,)}",
      4, F, "end of the string" },
  };
  char *dir = g_dir_make_tmp ("ee-modelfile-XXXXXX", NULL);
  GError *error = NULL;
  int ndim;
  int64_t shape[EE_MAX_DIMS];
  char *path;
  float *v;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    char *name = g_strdup_printf ("%s.npy", cases[i].name);
    path = write_npy (dir, name, cases[i].major, cases[i].dict,
                      cases[i].data_len);
    assert_npy_refused (dir, name, cases[i].code, cases[i].needle);
    g_unlink (path);
    g_free (path);
    g_free (name);
  }

  path = write_temp (dir, "magic.npy", "\x93NUMPX\x01\x00\x02\x00{}", 12);
  assert_npy_refused (dir, "magic.npy", F, "magic");
  g_unlink (path);
  g_free (path);

  /* Header length beyond the file, and a file too short for one. */
  path = write_temp (dir, "beyond.npy", "\x93NUMPY\x01\x00\xff\x00{}", 12);
  assert_npy_refused (dir, "beyond.npy", F, "exceeds the file");
  g_unlink (path);
  g_free (path);
  path = write_temp (dir, "cut.npy", "\x93NUMPY\x02\x00\x00\x00", 10);
  assert_npy_refused (dir, "cut.npy", F, "header length");
  g_unlink (path);
  g_free (path);

  /* Version 2, '<f8', unaligned data and Python 2's long suffix. */
  path = write_npy (
      dir, "v2.npy", 2,
      "{'fortran_order': False, \"shape\": (2L, 1L,), 'descr': '<f8'}", 16);
  v = ee_npy_read_f32 (path, &ndim, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ndim, ==, 2);
  g_assert_cmpint (shape[0], ==, 2);
  g_assert_cmpint (shape[1], ==, 1);
  g_assert_cmpfloat (v[0], ==, 0.0f);
  g_free (v);
  g_unlink (path);
  g_free (path);

  g_assert_null (ee_npy_read_f32 ("/nonexistent.npy", &ndim, shape, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_FILE);
  g_clear_error (&error);
  rm_rf (dir);
  g_free (dir);
}

static void
test_npy_write_arguments (void)
{
  const int64_t five[5] = { 1, 1, 1, 1, 1 }, negative[1] = { -1 };
  const int64_t huge[2] = { G_MAXINT64, 2 }, one[1] = { 1 };
  const float x = 1;
  GError *error = NULL;

  g_assert_false (ee_npy_write_f32 ("/nonexistent/x.npy", &x, 5, five, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (
      ee_npy_write_f32 ("/nonexistent/x.npy", &x, 1, negative, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (ee_npy_write_f32 ("/nonexistent/x.npy", &x, 2, huge, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (
      ee_npy_write_f32 ("/nonexistent/x.npy", NULL, 1, one, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (ee_npy_write_f32 ("/nonexistent/x.npy", &x, 1, one, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_FILE);
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (refusals); i++) {
    char *path = g_strdup_printf ("/safetensors/refuse/%s", refusals[i].path);
    g_test_add_data_func (path, &refusals[i], test_refusal);
    g_free (path);
  }
  g_test_add_func ("/safetensors/refuse/too-short", test_too_short);
  g_test_add_func ("/safetensors/refuse/header-length-beyond-file",
                   test_header_length_beyond_file);
  g_test_add_func ("/safetensors/refuse/header-length-overflow",
                   test_header_length_overflow);
  g_test_add_func ("/safetensors/refuse/header-bytes", test_header_bytes);
  g_test_add_func ("/safetensors/refuse/nested-too-deep", test_nested_too_deep);
  g_test_add_func ("/safetensors/open/missing", test_open_missing);
  g_test_add_func ("/safetensors/open/malformed", test_open_malformed);
  g_test_add_func ("/safetensors/valid/empty", test_valid_empty);
  g_test_add_func ("/safetensors/valid/layout", test_valid_layout);
  g_test_add_func ("/safetensors/valid/metadata-keys", test_metadata_keys);
  g_test_add_func ("/safetensors/valid/get-checked", test_get_checked);
  g_test_add_func ("/safetensors/convert/f16-values", test_f16_values);
  g_test_add_func ("/safetensors/convert/bf16-exact", test_bf16_exact);
  g_test_add_func ("/safetensors/python-written", test_python_written);
  g_test_add_func ("/npy/from-numpy", test_npy_from_numpy);
  g_test_add_func ("/npy/to-numpy", test_npy_to_numpy);
  g_test_add_func ("/npy/malformed", test_npy_malformed);
  g_test_add_func ("/npy/write-arguments", test_npy_write_arguments);
  return g_test_run ();
}
