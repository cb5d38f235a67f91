// How long OpenMP's threads spin while they wait for each other.
//
// At the end of a parallel region libgomp's threads spin before they sleep: 300,000 rounds
// of a pause instruction by default, about 7 ms on this project's machines. Where other jobs
// keep the cores busy that is ruinous: the thread that spins holds a core its partner needs
// to finish, and demo training ran 7x slower on two threads than on one (walkthrough 1.10).
// 1000 rounds, about 25 us, still catch the next region of a busy loop on a quiet machine,
// which is what spinning is for, and then give the core back; OMP_WAIT_POLICY=passive (no
// spinning at all) costs a sleep and a wake-up, about 30 us here, at every region.
//
// libgomp reads GOMP_SPINCOUNT once, when the program loads, before main: too early for main
// to set it, and an executable's own earliest hook (.preinit_array) runs before libc has set
// up the environment. So when neither GOMP_SPINCOUNT nor OMP_WAIT_POLICY is set and OpenMP
// would use more than one thread, kvshare sets GOMP_SPINCOUNT=1000 and runs itself again
// (exec, the same arguments; about a millisecond). A user's setting of either is kept.
#pragma once

// Called first in main; returns in the process that goes on (the same one, or after exec).
void spin_briefly_in_openmp_waits(char** argv);
