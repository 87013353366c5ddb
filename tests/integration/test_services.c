/* test_services.c - the services every test run starts are real and usable: a PostgreSQL 15
 * query through libpq, and a message produced by the idempotent producer (acks=all) and
 * consumed back through a consumer group with librdkafka, byte for byte. */
#include "itest.h"

#include <librdkafka/rdkafka.h>
#include <time.h>

static void test_services_postgres_answers(void **state)
{
    (void)state;
    PGconn *c = itest_connect("postgres");
    assert_true(PQserverVersion(c) >= 150000 && PQserverVersion(c) < 160000);
    assert_int_equal(itest_scalar(c, "SELECT 40 + 2"), 42);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_available_extensions "
                                     "WHERE name IN ('pg_trgm', 'unaccent')"),
                     2);
    PQfinish(c);
}

static rd_kafka_t *new_client(rd_kafka_type_t type, const char *const *kv)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", itest_kafka_bootstrap(), errstr, sizeof(errstr));
    for (int i = 0; kv[i] != NULL; i += 2) {
        if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
            fail_msg("%s: %s", kv[i], errstr);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL)
        fail_msg("rd_kafka_new: %s", errstr);
    return rk;
}

static void create_topic(rd_kafka_t *rk, const char *topic)
{
    char errstr[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 3, 1, errstr, sizeof(errstr));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    assert_non_null(ev);
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    assert_int_equal(n, 1);
    if (rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("create topic %s: %s", topic, rd_kafka_topic_result_error_string(tr[0]));
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
}

static void test_services_kafka_produce_and_consume_through_group(void **state)
{
    static const char *const pconf[] = {"enable.idempotence", "true",           "acks", "all",
                                        "partitioner",        "murmur2_random", NULL};
    char topic[64], group[64];
    static char payload[] = "{\"v\":1,\"bytes\":\"\\u0000 binary \\u00ff\"}\0tail";
    (void)state;
    snprintf(topic, sizeof(topic), "itest.services.%d.%ld", (int)getpid(), (long)time(NULL));
    snprintf(group, sizeof(group), "itest-group-%d", (int)getpid());

    rd_kafka_t *p = new_client(RD_KAFKA_PRODUCER, pconf);
    create_topic(p, topic);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY("district-001", 12),
                          RD_KAFKA_V_VALUE(payload, sizeof(payload)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(p, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_outq_len(p), 0);
    rd_kafka_destroy(p);

    static const char *cconf_tmpl[] = {
        "group.id", NULL, "auto.offset.reset", "earliest", "enable.auto.commit", "false", NULL};
    cconf_tmpl[1] = group;
    rd_kafka_t *c = new_client(RD_KAFKA_CONSUMER, cconf_tmpl);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(c, sub), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(sub);
    rd_kafka_message_t *m = NULL;
    for (int i = 0; i < 60 && m == NULL; i++) {
        m = rd_kafka_consumer_poll(c, 1000);
        if (m != NULL && m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_message_destroy(m);
            m = NULL;
        }
    }
    assert_non_null(m);
    assert_int_equal(m->len, sizeof(payload));
    assert_memory_equal(m->payload, payload, sizeof(payload));
    assert_int_equal(m->key_len, 12);
    assert_memory_equal(m->key, "district-001", 12);
    assert_int_equal(rd_kafka_commit_message(c, m, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_message_destroy(m);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_services_postgres_answers),
        cmocka_unit_test(test_services_kafka_produce_and_consume_through_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
