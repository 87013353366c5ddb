/* cmd_keygen.c - `pgrollout keygen`: writes an Ed25519 key pair (NAME.key 0600, NAME.pub). */
#include "cmd_keygen.h"

#include "pgr/crypto.h"
#include "pgr/exitcode.h"
#include "pgr/keys.h"

#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void keygen_usage(FILE *out)
{
    fprintf(out,
            "usage: pgrollout keygen --out DIR --name NAME\n\n"
            "Writes an Ed25519 key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub\n"
            "(\"ed25519 <base64 public key> <kid>\"). Refuses to overwrite an existing key.\n\n"
            "  --out DIR     directory to write into (must exist)\n"
            "  --name NAME   key name: letters, digits, '_', '-', '.'\n"
            "  -h, --help    show this help\n");
}

int coord_cmd_keygen_main(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = NULL, *name = NULL;
    pgr_error err;
    pgr_keypair kp;
    int c;

    pgr_error_clear(&err);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            dir = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'h':
            keygen_usage(stdout);
            return PGR_EXIT_OK;
        default:
            fprintf(stderr, "pgrollout keygen: unknown or incomplete option \"%s\"\n",
                    argv[optind - 1]);
            keygen_usage(stderr);
            return PGR_EXIT_USAGE;
        }
    }
    if (dir == NULL || name == NULL || optind != argc) {
        fprintf(stderr, "pgrollout keygen: --out and --name are required\n");
        keygen_usage(stderr);
        return PGR_EXIT_USAGE;
    }
    if (pgr_crypto_init(&err) != PGR_OK || pgr_keys_generate(dir, name, &kp, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout keygen: %s\n", err.msg);
        return err.code == PGR_ERR_INVALID ? PGR_EXIT_USAGE : PGR_EXIT_FAIL;
    }
    sodium_memzero(kp.sk, sizeof(kp.sk));
    printf("wrote %s/%s.key and %s/%s.pub (kid %s)\n", dir, name, dir, name, kp.kid);
    return PGR_EXIT_OK;
}
