// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
//
// In-kernel change detection for tcp-info's `-poll.mode=bpf`.
//
// An `iter/tcp` program: for every TCP socket the archive's dumps would
// return (not SYN_RECV, TIME_WAIT or CLOSE), it folds the kernel fields from
// which tcp_info and the other archived attributes are built into a 64-bit
// signature, keeps it in socket storage, and writes one `struct changed`
// (below) into the iterator's seq_file for the sockets that are new to it,
// changed state, or whose signature moved. User space then fetches exactly
// those sockets' records through sock_diag, so the archive keeps the
// kernel's own bytes; nothing here is archived.
//
// The signature is a superset of what the change rule compares (the
// rule's fields and the fields they are computed from); what it cannot
// see is listed in changescan/src/lib.rs, and the agent's slower full dump
// catches it.
//
// No vmlinux.h: the few kernel structs read are declared below with only the
// fields used, marked `preserve_access_index`, so libbpf relocates every
// field offset against the running kernel's BTF (CO-RE).

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

typedef struct {
	int counter;
} atomic_t;

typedef struct refcount_struct {
	atomic_t refs;
} refcount_t;

struct in6_addr {
	__u8 u6_addr8[16];
} __attribute__((preserve_access_index));

struct sock_common {
	union {
		__u64 skc_addrpair;
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		__u32 skc_portpair;
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	volatile unsigned char skc_state;
	int skc_bound_dev_if;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	atomic_t sk_drops;
	struct {
		atomic_t rmem_alloc;
		int len;
	} sk_backlog;
	int sk_rcvbuf;
	int sk_forward_alloc;
	atomic_t sk_omem_alloc;
	int sk_wmem_queued;
	refcount_t sk_wmem_alloc;
	unsigned long sk_pacing_rate;
	unsigned long sk_max_pacing_rate;
	__u32 sk_mark;
	int sk_sndbuf;
	__u8 sk_shutdown;
	__u32 sk_ack_backlog;
	__u32 sk_max_ack_backlog;
} __attribute__((preserve_access_index));

struct ipv6_pinfo {
	__u8 tclass;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
	struct ipv6_pinfo *pinet6;
	__u8 tos;
} __attribute__((preserve_access_index));

struct tcp_congestion_ops;

struct inet_connection_sock {
	struct inet_sock icsk_inet;
	__u32 icsk_rto;
	__u32 icsk_pmtu_cookie;
	const struct tcp_congestion_ops *icsk_ca_ops;
	__u8 icsk_ca_state : 5;
	__u8 icsk_retransmits;
	__u8 icsk_backoff;
	__u8 icsk_probes_out;
	struct {
		__u32 ato : 8;
		__u16 rcv_mss;
	} icsk_ack;
	__u64 icsk_ca_priv[13];
} __attribute__((preserve_access_index));

struct minmax_sample {
	__u32 t;
	__u32 v;
};

struct minmax {
	struct minmax_sample s[3];
};

struct tcp_sock {
	struct inet_connection_sock inet_conn;
	__u32 rcv_ssthresh;
	__u32 reordering;
	__u32 snd_wnd;
	__u32 mss_cache;
	__u32 snd_cwnd;
	__u32 lost_out;
	__u32 sacked_out;
	__u32 copied_seq;
	__u32 retrans_out;
	__u16 advmss;
	__u32 snd_ssthresh;
	struct minmax rtt_min;
	__u32 segs_out;
	__u32 data_segs_out;
	__u32 write_seq;
	__u32 mdev_us;
	__u32 rcv_nxt;
	__u32 snd_nxt;
	__u32 snd_una;
	__u32 window_clamp;
	__u32 srtt_us;
	__u32 packets_out;
	__u32 rcv_wnd;
	__u64 bytes_received;
	__u32 segs_in;
	__u32 data_segs_in;
	__u32 rate_delivered;
	__u32 rate_interval_us;
	__u64 bytes_acked;
	struct {
		__u32 rtt_us;
	} rcv_rtt_est;
	struct {
		__u32 space;
	} rcvq_space;
	__u32 total_retrans;
} __attribute__((preserve_access_index));

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

// Not in Debian 12's bpf_helper_defs.h under this name and type.
static struct tcp_sock *(*skc_to_tcp_sock)(void *sk) = (void *)BPF_FUNC_skc_to_tcp_sock;

// TCP states (include/net/tcp_states.h).
#define TCP_SYN_RECV 3
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_NEW_SYN_RECV 12

// Why a socket is reported (`struct changed.reason`).
#define REASON_NEW 1
#define REASON_STATE 2
#define REASON_SIGNATURE 3

struct signature {
	__u64 hash;
	__u8 state;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct signature);
} signatures SEC(".maps");

// One reported socket, as user space reads it (changescan/src/lib.rs,
// `Changed::parse`): 56 bytes, native endian except the addresses and the
// destination port, which are in network order as the kernel keeps them.
struct changed {
	__u64 cookie;
	__u8 family;
	__u8 state;
	__u8 reason;
	__u8 pad;
	__u32 bound_dev_if;
	__u16 sport;
	__be16 dport;
	__u32 pad2;
	__u8 src[16];
	__u8 dst[16];
};

#define MIX(h, v) ((h) = ((h) ^ (__u64)(v)) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL)

static __always_inline __u64 sign(struct tcp_sock *tp)
{
	struct inet_connection_sock *icsk = &tp->inet_conn;
	struct inet_sock *inet = &icsk->icsk_inet;
	struct sock *sk = &inet->sk;
	__u64 h = 0xcbf29ce484222325ULL;

	// struct sock: INET_DIAG_SHUTDOWN, MEMINFO, SKMEMINFO, the pacing
	// rates and (for listeners) tcp_info's unacked/sacked.
	MIX(h, sk->sk_shutdown);
	MIX(h, sk->sk_mark);
	MIX(h, sk->sk_rcvbuf);
	MIX(h, sk->sk_sndbuf);
	MIX(h, sk->sk_forward_alloc);
	MIX(h, sk->sk_wmem_queued);
	MIX(h, sk->sk_wmem_alloc.refs.counter);
	MIX(h, sk->sk_backlog.rmem_alloc.counter);
	MIX(h, sk->sk_backlog.len);
	MIX(h, sk->sk_omem_alloc.counter);
	MIX(h, sk->sk_drops.counter);
	MIX(h, sk->sk_pacing_rate);
	MIX(h, sk->sk_max_pacing_rate);
	MIX(h, sk->sk_ack_backlog);
	MIX(h, sk->sk_max_ack_backlog);
	// INET_DIAG_TOS and TCLASS.
	MIX(h, inet->tos);
	if (sk->__sk_common.skc_family == 10 /* AF_INET6 */) {
		struct ipv6_pinfo *np = inet->pinet6;
		if (np)
			MIX(h, np->tclass);
	}
	// The connection's timers and congestion control: tcp_info's head
	// (ca_state, retransmits, probes, backoff, rto, ato, rcv_mss), pmtu,
	// INET_DIAG_CONG (the ops pointer) and VEGASINFO/BBR/DCTCP (ca_priv).
	MIX(h, icsk->icsk_rto);
	MIX(h, icsk->icsk_pmtu_cookie);
	// The pointer as a number (pointer arithmetic is refused): read it
	// as plain memory.
	__u64 ca_ops = 0;
	bpf_probe_read_kernel(&ca_ops, sizeof(ca_ops), &icsk->icsk_ca_ops);
	MIX(h, ca_ops);
	MIX(h, BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state));
	MIX(h, icsk->icsk_retransmits);
	MIX(h, icsk->icsk_backoff);
	MIX(h, icsk->icsk_probes_out);
	MIX(h, BPF_CORE_READ_BITFIELD_PROBED(&icsk->icsk_ack, ato));
	MIX(h, icsk->icsk_ack.rcv_mss);
#pragma unroll
	for (int i = 0; i < 13; i++)
		MIX(h, icsk->icsk_ca_priv[i]);
	// struct tcp_sock: every counter, window, sequence and estimate
	// tcp_get_info reads in the compared ranges, and the sequence numbers
	// that move with any data sent, received, written or read.
	MIX(h, tp->segs_in);
	MIX(h, tp->segs_out);
	MIX(h, tp->data_segs_in);
	MIX(h, tp->data_segs_out);
	MIX(h, tp->total_retrans);
	MIX(h, tp->bytes_acked);
	MIX(h, tp->bytes_received);
	MIX(h, tp->snd_cwnd);
	MIX(h, tp->snd_ssthresh);
	MIX(h, tp->rcv_ssthresh);
	MIX(h, tp->srtt_us);
	MIX(h, tp->mdev_us);
	MIX(h, tp->mss_cache);
	MIX(h, tp->advmss);
	MIX(h, tp->reordering);
	MIX(h, tp->rcv_rtt_est.rtt_us);
	MIX(h, tp->rcvq_space.space);
	MIX(h, tp->write_seq);
	MIX(h, tp->snd_nxt);
	MIX(h, tp->snd_una);
	MIX(h, tp->copied_seq);
	MIX(h, tp->rcv_nxt);
	MIX(h, tp->sacked_out);
	MIX(h, tp->lost_out);
	MIX(h, tp->retrans_out);
	MIX(h, tp->packets_out);
	MIX(h, tp->rate_delivered);
	MIX(h, tp->rate_interval_us);
	MIX(h, tp->rtt_min.s[0].v);
	MIX(h, tp->window_clamp);
	MIX(h, tp->snd_wnd);
	MIX(h, tp->rcv_wnd);
	return h;
}

SEC("iter/tcp")
int scan(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct seq_file *seq = ctx->meta->seq;
	struct signature *stored;
	struct changed out = {};
	struct tcp_sock *tp;
	__u8 state, reason;
	__u64 hash;

	if (!skc)
		return 0;
	// Time-wait and request sockets are no tcp_sock: NULL.
	tp = skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	state = skc->skc_state;
	if (state == TCP_SYN_RECV || state == TCP_TIME_WAIT || state == TCP_CLOSE ||
	    state == TCP_NEW_SYN_RECV)
		return 0;

	hash = sign(tp);
	stored = bpf_sk_storage_get(&signatures, tp, 0, 0);
	if (!stored) {
		// New to the scan (or, when storage cannot be had, reported at
		// every scan).
		stored = bpf_sk_storage_get(&signatures, tp, 0, BPF_SK_STORAGE_GET_F_CREATE);
		reason = REASON_NEW;
	} else if (stored->state != state) {
		reason = REASON_STATE;
	} else if (stored->hash != hash) {
		reason = REASON_SIGNATURE;
	} else {
		return 0;
	}
	if (stored) {
		stored->hash = hash;
		stored->state = state;
	}

	out.cookie = bpf_get_socket_cookie(skc);
	out.family = (__u8)skc->skc_family;
	out.state = state;
	out.reason = reason;
	out.bound_dev_if = skc->skc_bound_dev_if;
	out.sport = skc->skc_num;
	out.dport = skc->skc_dport;
	if (out.family == 10 /* AF_INET6 */) {
		bpf_probe_read_kernel(out.src, 16, &skc->skc_v6_rcv_saddr);
		bpf_probe_read_kernel(out.dst, 16, &skc->skc_v6_daddr);
	} else {
		__builtin_memcpy(out.src, (const void *)&(__be32){skc->skc_rcv_saddr}, 4);
		__builtin_memcpy(out.dst, (const void *)&(__be32){skc->skc_daddr}, 4);
	}
	bpf_seq_write(seq, &out, sizeof(out));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
