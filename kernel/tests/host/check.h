/*
 * The CHECK/CASE harness of the host test programs (unit_tests.c, ring_tests.c): each case is a
 * function run by run(), which prints "ok <case>" or "FAIL <case>: <check> (line N)" (only the
 * first failed check of a case) and counts the failed cases in `failures`. Included by exactly
 * one file per program.
 */
#ifndef XTV_HOST_CHECK_H
#define XTV_HOST_CHECK_H

#include <stdbool.h>
#include <stdio.h>

static int failures;
static const char *current;
static bool current_failed;

#define CHECK(cond)                                                                               \
    do {                                                                                          \
        if (!(cond) && !current_failed) {                                                         \
            printf("FAIL %s: %s (line %d)\n", current, #cond, __LINE__);                          \
            current_failed = true;                                                                \
        }                                                                                         \
    } while (0)

#define CASE(name) static void name(void)

static void run(const char *name, void (*fn)(void))
{
    current = name;
    current_failed = false;
    fn();
    if (current_failed)
        failures++;
    else
        printf("ok %s\n", name);
}

#endif
