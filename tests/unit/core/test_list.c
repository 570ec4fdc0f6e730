/* test_list.c - the intrusive list (core/list.h): order of inserts, removal
 * from the front, middle and back, the safe walk freeing as it goes, and
 * the element found back from its link. */
#include "core/list.h"
#include "harness.h"

struct item {
    int before; /* the link is not the first member */
    struct list link;
    int value;
};

/* Write the values of the list at head, front to back, into out (at most
 * max); return how many there are, and check that the back links agree. */
static int values(const struct list *head, int *out, int max)
{
    int n = 0;
    const struct list *l;
    for (l = head->next; l != head; l = l->next) {
        if (l->next->prev != l || l->prev->next != l)
            return -1;
        if (n < max)
            out[n] = LIST_CONTAINER_OF(l, struct item, link)->value;
        n++;
    }
    return n;
}

#define ASSERT_VALUES(head, ...)                                               \
    do {                                                                       \
        int want_[] = {__VA_ARGS__};                                           \
        int got_[16];                                                          \
        int n_ = values((head), got_, 16);                                     \
        ASSERT_EQ(n_, (int)(sizeof want_ / sizeof want_[0]));                  \
        for (int i_ = 0; i_ < n_; i_++)                                        \
            ASSERT_EQ(got_[i_], want_[i_]);                                    \
    } while (0)

TEST(empty_after_init)
{
    struct list head;
    list_init(&head);
    ASSERT(list_empty(&head));
    ASSERT(list_first(&head) == NULL);
    ASSERT(values(&head, NULL, 0) == 0);
    struct list *pos;
    int seen = 0;
    LIST_FOREACH(pos, &head) {
        seen++;
    }
    ASSERT_EQ(seen, 0);
    return 0;
}

TEST(insert_tail_keeps_order_insert_head_reverses)
{
    struct list head;
    struct item it[4] = {{0}};
    list_init(&head);
    for (int i = 0; i < 4; i++) {
        it[i].value = i + 1;
        list_init(&it[i].link);
    }
    list_insert_tail(&head, &it[1].link);
    list_insert_tail(&head, &it[2].link);
    list_insert_head(&head, &it[0].link);
    list_insert_tail(&head, &it[3].link);
    ASSERT(!list_empty(&head));
    ASSERT_VALUES(&head, 1, 2, 3, 4);
    ASSERT(list_first(&head) == &it[0].link);
    ASSERT(head.prev == &it[3].link);
    return 0;
}

TEST(remove_front_middle_back_and_twice)
{
    struct list head;
    struct item it[5] = {{0}};
    list_init(&head);
    for (int i = 0; i < 5; i++) {
        it[i].value = 10 * (i + 1);
        list_insert_tail(&head, &it[i].link);
    }
    list_remove(&it[2].link); /* middle */
    ASSERT_VALUES(&head, 10, 20, 40, 50);
    ASSERT(list_empty(&it[2].link));
    list_remove(&it[2].link); /* again: changes nothing */
    ASSERT_VALUES(&head, 10, 20, 40, 50);
    list_remove(&it[0].link); /* front */
    ASSERT_VALUES(&head, 20, 40, 50);
    ASSERT(list_first(&head) == &it[1].link);
    list_remove(&it[4].link); /* back */
    ASSERT_VALUES(&head, 20, 40);
    list_remove(&it[1].link);
    list_remove(&it[3].link);
    ASSERT(list_empty(&head));
    ASSERT(list_first(&head) == NULL);
    /* the head is usable again after going empty */
    list_insert_head(&head, &it[3].link);
    ASSERT_VALUES(&head, 40);
    return 0;
}

TEST(container_of_finds_the_element)
{
    struct item it = {.before = 7, .value = 42};
    struct item *back = LIST_CONTAINER_OF(&it.link, struct item, link);
    ASSERT(back == &it);
    ASSERT_EQ(back->before, 7);
    ASSERT_EQ(back->value, 42);
    return 0;
}

TEST(foreach_visits_in_order)
{
    struct list head, *pos;
    struct item it[3] = {{0}};
    list_init(&head);
    for (int i = 0; i < 3; i++) {
        it[i].value = i;
        list_insert_tail(&head, &it[i].link);
    }
    int sum = 0, order_ok = 1, expect = 0;
    LIST_FOREACH(pos, &head) {
        struct item *e = LIST_CONTAINER_OF(pos, struct item, link);
        order_ok &= e->value == expect++;
        sum += e->value;
    }
    ASSERT(order_ok);
    ASSERT_EQ(sum, 3);
    ASSERT_EQ(expect, 3);
    return 0;
}

TEST(foreach_safe_frees_while_walking)
{
    struct list head, *pos, *tmp;
    list_init(&head);
    for (int i = 0; i < 6; i++) {
        struct item *e = calloc(1, sizeof *e);
        ASSERT(e != NULL);
        e->value = i;
        list_insert_tail(&head, &e->link);
    }
    /* drop the even ones (ASan catches a walk through freed memory) */
    LIST_FOREACH_SAFE(pos, tmp, &head) {
        struct item *e = LIST_CONTAINER_OF(pos, struct item, link);
        if (e->value % 2 == 0) {
            list_remove(&e->link);
            free(e);
        }
    }
    ASSERT_VALUES(&head, 1, 3, 5);
    LIST_FOREACH_SAFE(pos, tmp, &head) {
        list_remove(pos);
        free(LIST_CONTAINER_OF(pos, struct item, link));
    }
    ASSERT(list_empty(&head));
    return 0;
}

TEST(drain_from_the_front)
{
    struct list head, *l;
    struct item it[3] = {{0}};
    list_init(&head);
    for (int i = 0; i < 3; i++) {
        it[i].value = i + 5;
        list_insert_tail(&head, &it[i].link);
    }
    int got[3], n = 0;
    while ((l = list_first(&head)) != NULL) {
        list_remove(l);
        if (n < 3)
            got[n] = LIST_CONTAINER_OF(l, struct item, link)->value;
        n++;
    }
    ASSERT_EQ(n, 3);
    ASSERT_EQ(got[0], 5);
    ASSERT_EQ(got[1], 6);
    ASSERT_EQ(got[2], 7);
    return 0;
}

TEST_LIST(TEST_ENTRY(empty_after_init),
          TEST_ENTRY(insert_tail_keeps_order_insert_head_reverses),
          TEST_ENTRY(remove_front_middle_back_and_twice),
          TEST_ENTRY(container_of_finds_the_element),
          TEST_ENTRY(foreach_visits_in_order),
          TEST_ENTRY(foreach_safe_frees_while_walking),
          TEST_ENTRY(drain_from_the_front))
