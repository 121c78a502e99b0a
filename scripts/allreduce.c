/* Time of one MPI_Allreduce (sum) of N floats, the exchange of one data-parallel meta
 * step of `maml train --mpi`. Build and run (OpenMPI):
 *   mpicc -O2 scripts/allreduce.c -o /tmp/allreduce
 *   mpirun --allow-run-as-root --oversubscribe -np 2 /tmp/allreduce 1762 1000000
 * Prints, per size: floats, bytes, microseconds per all-reduce (median of 11 rounds of
 * 200 all-reduces after a warm-up). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int a = 1; a < argc; a++) {
        long n = atol(argv[a]);
        float *send = malloc(n * sizeof(float)), *recv = malloc(n * sizeof(float));
        for (long i = 0; i < n; i++) send[i] = (float)(rank + i % 7);
        int reps = n > 100000 ? 20 : 200;
        double rounds[11];
        for (int r = -1; r < 11; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t = MPI_Wtime();
            for (int k = 0; k < reps; k++)
                MPI_Allreduce(send, recv, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            if (r >= 0) rounds[r] = (MPI_Wtime() - t) / reps * 1e6;
        }
        qsort(rounds, 11, sizeof(double), cmp);
        if (rank == 0)
            printf("ranks %d floats %ld bytes %ld all-reduce %.1f us\n", size, n,
                   n * (long)sizeof(float), rounds[5]);
        free(send);
        free(recv);
    }
    MPI_Finalize();
    return 0;
}
