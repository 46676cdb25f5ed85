/* sock_int: what sock.c offers the rest of the library only. */
#ifndef SB_SOCK_INT_H
#define SB_SOCK_INT_H

/* sb_listen, with SO_REUSEPORT set before bind when reuseport is 1 (TCP
 * only; ignored for unix: addresses). */
int sb__listen_opt(const char *addr, int backlog, int reuseport);

#endif
