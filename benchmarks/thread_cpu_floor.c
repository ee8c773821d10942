/* thread_cpu_floor.c: what the perform routine's CPU-time figure reads for next to no work.
 *
 *   cc -O2 -o thread_cpu_floor benchmarks/thread_cpu_floor.c
 *   ./thread_cpu_floor SECONDS           (chrt -f 5 ./thread_cpu_floor ... for real-time priority)
 *
 * Every 1.33 ms (a 64-frame period at 48 kHz) it copies 64 samples of a
 * 4-second clip, timed exactly as [ganspacesynth~]'s perform routine is
 * timed (CLOCK_THREAD_CPUTIME_ID and CLOCK_MONOTONIC around the work), and
 * prints the worst of each and how many blocks read over 50 us. The copy
 * takes well under a microsecond: whatever the worst CPU time says beyond
 * that is the machine charging the thread for time it did not compute
 * (interrupts, a virtual machine's stolen time), the floor under `stats`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PERIOD_NS 1333333
#define BLOCK 64
#define CLIP (4 * 48000)

static double elapsed_us(struct timespec a, struct timespec b)
{
    return (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) * 1e-3;
}

int main(int argc, char **argv)
{
    static float clip[CLIP];
    static volatile float out[BLOCK];  /* volatile: the copy must happen */
    struct timespec period = {0, PERIOD_NS};
    double seconds = argc > 1 ? atof(argv[1]) : 30, worst_cpu = 0, worst_wall = 0;
    long blocks = (long)(seconds * 1e9 / PERIOD_NS), over = 0, position = 0;
    for (long k = 0; k < blocks; k++)
    {
        struct timespec c0, c1, t0, t1;
        double cpu, wall;
        nanosleep(&period, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        for (int i = 0; i < BLOCK; i++)
            out[i] = clip[position++ % CLIP];
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        cpu = elapsed_us(c0, c1), wall = elapsed_us(t0, t1);
        worst_cpu = cpu > worst_cpu ? cpu : worst_cpu;
        worst_wall = wall > worst_wall ? wall : worst_wall;
        over += cpu > 50;
    }
    (void)out[0];
    printf("%ld blocks of %d samples: worst CPU %.1f us, worst wall %.1f us, over 50 us CPU: %ld\n",
           blocks, BLOCK, worst_cpu, worst_wall, over);
    return 0;
}
