/* keys.c - Ed25519 key generation, key files, kid computation, and the checks every key and
 * keyring file passes when it is read (opened once, no symlink, checked on the descriptor). */
#include "pgr/keys.h"
#include "pgr/crypto.h"
#include "pgr/str.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX 4096

void pgr_keys_kid(const uint8_t pk[PGR_PK_LEN], char kid[PGR_KID_LEN])
{
    uint8_t d[PGR_SHA256_LEN];
    pgr_crypto_sha256(pk, PGR_PK_LEN, d);
    pgr_crypto_hex_encode(d, 8, kid);
}

void pgr_keys_format_public(const uint8_t pk[PGR_PK_LEN], char *out, size_t outlen)
{
    char kid[PGR_KID_LEN];
    char *b64 = pgr_crypto_base64_encode(pk, PGR_PK_LEN);
    pgr_keys_kid(pk, kid);
    snprintf(out, outlen, "ed25519 %s %s", b64 != NULL ? b64 : "", kid);
    free(b64);
}

static bool key_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Writes content to a new file (O_EXCL) with the given mode, forcing the mode past the umask. */
static pgr_code write_new_file(const char *path, const char *content, mode_t mode, pgr_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0)
        return pgr_error_set(err, errno == EEXIST ? PGR_ERR_EXISTS : PGR_ERR_IO,
                             "could not create file \"%s\": %s", path, strerror(errno));
    size_t len = strlen(content);
    bool ok = fchmod(fd, mode) == 0 && write(fd, content, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0)
        ok = false;
    if (!ok) {
        unlink(path);
        return pgr_error_set(err, PGR_ERR_IO, "could not write file \"%s\": %s", path,
                             strerror(saved));
    }
    return PGR_OK;
}

pgr_code pgr_keys_generate(const char *dir, const char *name, pgr_keypair *out, pgr_error *err)
{
    char sk_path[4096], pk_path[4096], line[256];
    struct stat st;

    if (!key_name_valid(name))
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "invalid key name \"%s\": use letters, digits, '_', '-' or '.'", name);
    snprintf(sk_path, sizeof(sk_path), "%s/%s.key", dir, name);
    snprintf(pk_path, sizeof(pk_path), "%s/%s.pub", dir, name);
    if (stat(sk_path, &st) == 0 || stat(pk_path, &st) == 0)
        return pgr_error_set(err, PGR_ERR_EXISTS,
                             "key \"%s\" already exists in \"%s\": refusing to overwrite it", name,
                             dir);
    crypto_sign_keypair(out->pk, out->sk);
    pgr_keys_kid(out->pk, out->kid);
    char *b64 = pgr_crypto_base64_encode(out->sk, PGR_SK_LEN);
    if (b64 == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    snprintf(line, sizeof(line), "ed25519-secret %s %s\n", b64, out->kid);
    sodium_memzero(b64, strlen(b64));
    free(b64);
    pgr_code rc = write_new_file(sk_path, line, 0600, err);
    sodium_memzero(line, sizeof(line));
    if (rc != PGR_OK)
        return rc;
    pgr_keys_format_public(out->pk, line, sizeof(line) - 1);
    strncat(line, "\n", sizeof(line) - strlen(line) - 1);
    rc = write_new_file(pk_path, line, 0644, err);
    if (rc != PGR_OK)
        unlink(sk_path);
    return rc;
}

static const char *keyfile_label(pgr_keyfile_kind kind)
{
    return kind == PGR_KEYFILE_SECRET    ? "secret key file"
           : kind == PGR_KEYFILE_KEYRING ? "keyring"
                                         : "public key file";
}

/* Why fd (opened from path) may not be trusted as a key file of this kind, or PGR_OK. The checks
 * are made on the open descriptor: the file read is the file checked (no stat-then-open race). */
static pgr_code keyfile_check(int fd, const char *path, pgr_keyfile_kind kind, pgr_error *err)
{
    const char *what = keyfile_label(kind);
    struct stat st;
    if (fstat(fd, &st) != 0)
        return pgr_error_set(err, PGR_ERR_IO, "could not stat %s \"%s\": %s", what, path,
                             strerror(errno));
    if (!S_ISREG(st.st_mode))
        return pgr_error_set(err, PGR_ERR_PERM, "%s \"%s\" is not a regular file (%s)", what, path,
                             S_ISDIR(st.st_mode) ? "a directory" : "a device, FIFO or socket");
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return pgr_error_set(err, PGR_ERR_PERM,
                             "%s \"%s\" is owned by uid %u: it must belong to the user running "
                             "pgrollout (uid %u) or to root",
                             what, path, (unsigned)st.st_uid, (unsigned)geteuid());
    if (kind == PGR_KEYFILE_SECRET && (st.st_mode & 077) != 0)
        return pgr_error_set(err, PGR_ERR_PERM,
                             "%s \"%s\" has mode %04o: it must not be accessible by group or "
                             "others (chmod 600)",
                             what, path, (unsigned)(st.st_mode & 07777));
    if (kind != PGR_KEYFILE_SECRET && (st.st_mode & 022) != 0)
        return pgr_error_set(err, PGR_ERR_PERM,
                             "%s \"%s\" has mode %04o: it must not be writable by group or "
                             "others (chmod go-w)",
                             what, path, (unsigned)(st.st_mode & 07777));
    return PGR_OK;
}

/* Reads the whole open file (at most max bytes) into a NUL-terminated buffer. */
static pgr_code keyfile_slurp(int fd, const char *path, const char *what, size_t max, char **out,
                              size_t *out_len, pgr_error *err)
{
    char *buf = malloc(max + 1);
    size_t len = 0;
    if (buf == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory reading %s \"%s\"", what, path);
    for (;;) {
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            free(buf);
            return pgr_error_set(err, PGR_ERR_IO, "could not read %s \"%s\": %s", what, path,
                                 strerror(saved));
        }
        len += (size_t)n;
        if (n == 0 || len > max)
            break;
    }
    if (len > max) {
        sodium_memzero(buf, len);
        free(buf);
        return pgr_error_set(err, PGR_ERR_INVALID, "%s \"%s\" is larger than %zu bytes", what, path,
                             max);
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len != NULL)
        *out_len = len;
    return PGR_OK;
}

pgr_code pgr_keys_file_read(const char *path, pgr_keyfile_kind kind, size_t max, char **out,
                            size_t *out_len, pgr_error *err)
{
    const char *what = keyfile_label(kind);
    struct stat lst;
    /* O_NONBLOCK: a FIFO put in the key's place must not hang the open (fstat refuses it) */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ELOOP && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
        return pgr_error_set(err, PGR_ERR_PERM,
                             "%s \"%s\" is a symbolic link: refused, name the file itself", what,
                             path);
    if (fd < 0)
        return pgr_error_set(err, errno == ENOENT ? PGR_ERR_NOTFOUND : PGR_ERR_IO,
                             "could not open %s \"%s\": %s", what, path, strerror(errno));
    pgr_code rc = keyfile_check(fd, path, kind, err);
    if (rc == PGR_OK)
        rc = keyfile_slurp(fd, path, what, max, out, out_len, err);
    close(fd);
    return rc;
}

/* Splits "word b64 kid" into its three fields (in place); false on any other shape. */
static bool split3(char *s, char **a, char **b, char **c)
{
    char *save = NULL;
    *a = strtok_r(s, " \t", &save);
    *b = *a != NULL ? strtok_r(NULL, " \t", &save) : NULL;
    *c = *b != NULL ? strtok_r(NULL, " \t", &save) : NULL;
    return *c != NULL && strtok_r(NULL, " \t", &save) == NULL;
}

static pgr_code parse_secret(char *text, const char *path, pgr_keypair *out, pgr_error *err)
{
    char *word, *b64, *kid;
    size_t n = 0;
    uint8_t pk[PGR_PK_LEN];

    if (!split3(pgr_str_trim(text), &word, &b64, &kid) || strcmp(word, "ed25519-secret") != 0)
        return pgr_error_set(err, PGR_ERR_CRYPTO,
                             "secret key file \"%s\" is malformed: expected "
                             "\"ed25519-secret <base64> <kid>\"",
                             path);
    if (pgr_crypto_base64_decode(b64, strlen(b64), out->sk, PGR_SK_LEN, &n) != PGR_OK)
        return pgr_error_set(err, PGR_ERR_CRYPTO, "secret key file \"%s\": invalid base64", path);
    if (n != PGR_SK_LEN)
        return pgr_error_set(err, PGR_ERR_CRYPTO,
                             "secret key file \"%s\": key is %zu bytes, expected %d", path, n,
                             PGR_SK_LEN);
    /* The public half is stored in the secret key; check it is the one the seed derives. */
    crypto_sign_ed25519_sk_to_pk(pk, out->sk);
    uint8_t seed[crypto_sign_SEEDBYTES], pk2[PGR_PK_LEN], sk2[PGR_SK_LEN];
    crypto_sign_ed25519_sk_to_seed(seed, out->sk);
    crypto_sign_seed_keypair(pk2, sk2, seed);
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(sk2, sizeof(sk2));
    if (memcmp(pk, pk2, PGR_PK_LEN) != 0)
        return pgr_error_set(err, PGR_ERR_CRYPTO,
                             "secret key file \"%s\": public half does not match the seed", path);
    memcpy(out->pk, pk, PGR_PK_LEN);
    pgr_keys_kid(out->pk, out->kid);
    if (strcmp(kid, out->kid) != 0)
        return pgr_error_set(err, PGR_ERR_CRYPTO,
                             "secret key file \"%s\": kid \"%s\" does not match the key (\"%s\")",
                             path, kid, out->kid);
    return PGR_OK;
}

pgr_code pgr_keys_load_secret(const char *path, pgr_keypair *out, pgr_error *err)
{
    char *text = NULL;
    size_t len = 0;

    pgr_code rc = pgr_keys_file_read(path, PGR_KEYFILE_SECRET, KEY_FILE_MAX, &text, &len, err);
    if (rc != PGR_OK)
        return rc;
    rc = parse_secret(text, path, out, err);
    sodium_memzero(text, len);
    free(text);
    if (rc != PGR_OK)
        sodium_memzero(out, sizeof(*out));
    return rc;
}

pgr_code pgr_keys_parse_public(const char *line, pgr_pubkey *out, pgr_error *err)
{
    char buf[512];
    char *word, *b64, *kid;
    size_t n = 0;

    if (pgr_str_copy(buf, line, sizeof(buf)) >= sizeof(buf))
        return pgr_error_set(err, PGR_ERR_CRYPTO, "public key line is too long");
    if (!split3(pgr_str_trim(buf), &word, &b64, &kid) || strcmp(word, "ed25519") != 0)
        return pgr_error_set(err, PGR_ERR_CRYPTO,
                             "malformed public key: expected \"ed25519 <base64> <kid>\"");
    if (pgr_crypto_base64_decode(b64, strlen(b64), out->pk, PGR_PK_LEN, &n) != PGR_OK)
        return pgr_error_set(err, PGR_ERR_CRYPTO, "public key \"%s\": invalid base64", kid);
    if (n != PGR_PK_LEN)
        return pgr_error_set(err, PGR_ERR_CRYPTO, "public key \"%s\" is %zu bytes, expected %d",
                             kid, n, PGR_PK_LEN);
    pgr_keys_kid(out->pk, out->kid);
    if (strcmp(kid, out->kid) != 0)
        return pgr_error_set(err, PGR_ERR_CRYPTO,
                             "public key kid \"%s\" does not match the key (expected \"%s\")", kid,
                             out->kid);
    return PGR_OK;
}

pgr_code pgr_keys_load_public(const char *path, pgr_pubkey *out, pgr_error *err)
{
    char *text = NULL;
    pgr_code rc = pgr_keys_file_read(path, PGR_KEYFILE_PUBLIC, KEY_FILE_MAX, &text, NULL, err);
    if (rc != PGR_OK)
        return rc;
    rc = pgr_keys_parse_public(text, out, err);
    if (rc != PGR_OK)
        pgr_error_prefix(err, "public key file \"%s\"", path);
    free(text);
    return rc;
}
