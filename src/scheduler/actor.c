/*
 * actor.c - actors: Python instances living on one worker, their methods
 * run in order through that worker's private queue.
 *
 * An actor id is (generation << 32 | slot index): a slot is reused only
 * with a new generation, so a stale id never reaches a new actor; it
 * gets ECLOSED.  The slot table lives in C, guarded by the pool lock
 * (taken once per call/send to find the worker; never held while
 * waiting).  The instance lives in its worker's interpreter
 * (interp/actor_host.c), touched only by that worker with its GIL held.
 *
 * Kill epochs: a kill bumps the slot's epoch at once; messages sent
 * before it carry the old epoch and fail with ECLOSED when they come up.
 */
#include "scheduler/pool.h"
#include "common/alloc.h"

#include "channels/channel.h"
#include "common/atomics.h"
#include "interp/host.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TRACKED_RESTARTS 64

struct actor_slot {
	uint32_t generation;
	int alive;          /* spawned and not stopped */
	int worker;
	uint64_t epoch;     /* atomic: bumped by kill */
	uint64_t mailbox;   /* atomic: messages not yet handled */
	char *target;
	isola_msg ctor_args; /* kept for restarts */
	/* Why the constructor failed for good (encoded exception and its
	 * text), for the calls queued behind it; kept until the slot is
	 * reused (pool lock). */
	isola_msg ctor_exc;
	isola__error ctor_err;
	isola_actor_options opts;
	int64_t restarts[MAX_TRACKED_RESTARTS]; /* ring of restart times */
	int n_restarts;
};

static uint64_t make_id(uint32_t index, uint32_t gen)
{
	return ((uint64_t)gen << 32) | index;
}

/* The slot for id if it names a live actor (pool lock held). */
static struct actor_slot *lookup(struct isola_pool *p, uint64_t id)
{
	assert(isola__mutex_held(&p->lock));
	uint32_t index = (uint32_t)id, gen = (uint32_t)(id >> 32);
	if (index >= p->n_actor_slots)
		return NULL;
	struct actor_slot *s = &p->actors[index];
	return s->generation == gen && s->alive ? s : NULL;
}

/* {"actor": id, "event": event, "reason": reason} to the monitor. */
static void monitor(struct isola_pool *p, uint64_t id, const char *event, const char *reason)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "actor", 5);
	msgpack_pack_uint64(&pk, id);
	msgpack_pack_str_with_body(&pk, "event", 5);
	msgpack_pack_str_with_body(&pk, event, strlen(event));
	msgpack_pack_str_with_body(&pk, "reason", 6);
	msgpack_pack_str_with_body(&pk, reason, strlen(reason));
	isola_msg m;
	isola_msg_init(&m);
	if (isola_msg_set_bytes(&m, sb.data, sb.size) != 0 ||
	    isola_channel_send(p->monitor, &m, 0) != 0) {
		/* Monitor full (nobody reads it): dropped, never blocks a
		 * worker, but counted (isola_pool_monitor_dropped). */
		isola_msg_clear(&m);
		isola__add_relaxed(&p->monitor_dropped, 1);
	}
	msgpack_sbuffer_destroy(&sb);
}

/* ---- API (any thread) ------------------------------------------------ */

int isola_actor_spawn(isola_pool *p, const char *target, isola_msg *args,
		      const isola_actor_options *opts, isola_actor *out)
{
	if (p == NULL || out == NULL || !isola__valid_target(target))
		return ISOLA_EINVAL;
	if (isola__load_acquire(&p->closing))
		return ISOLA_ECLOSED;
	isola_actor_options o = { .restart = 0, .max_restarts = ISOLA_ACTOR_MAX_RESTARTS,
				  .window_ns = ISOLA_ACTOR_WINDOW_NS, .worker = -1 };
	if (opts != NULL) {
		o = *opts;
		if (o.max_restarts <= 0)
			o.max_restarts = ISOLA_ACTOR_MAX_RESTARTS;
		if (o.max_restarts > MAX_TRACKED_RESTARTS)
			o.max_restarts = MAX_TRACKED_RESTARTS;
		if (o.window_ns <= 0)
			o.window_ns = ISOLA_ACTOR_WINDOW_NS;
	}
	if (o.worker >= p->n)
		return ISOLA_EINVAL;
	struct task *t = isola__task_new(TASK_ACTOR_NEW, target);
	if (t == NULL)
		return ISOLA_ENOMEM;
	isola_msg_init(&t->args);
	pthread_mutex_lock(&p->lock);
	size_t index = p->n_actor_slots;
	for (size_t i = 0; i < p->n_actor_slots; i++)
		if (!p->actors[i].alive && p->actors[i].target == NULL) {
			index = i;
			break;
		}
	if (index == p->n_actor_slots) {
		struct actor_slot *grown = isola__realloc(p->actors, (index + 1) * sizeof(*grown));
		if (grown == NULL) {
			pthread_mutex_unlock(&p->lock);
			isola__task_free(t);
			return ISOLA_ENOMEM;
		}
		memset(&grown[index], 0, sizeof(*grown));
		p->actors = grown;
		p->n_actor_slots++;
	}
	struct actor_slot *s = &p->actors[index];
	int w = o.worker;
	if (w < 0) { /* the least loaded worker */
		w = 0;
		for (int i = 1; i < p->n; i++)
			if (p->workers[i].n_actors < p->workers[w].n_actors)
				w = i;
	}
	s->generation++;
	s->alive = 1;
	isola_msg_clear(&s->ctor_exc);
	isola__error_clear(&s->ctor_err);
	s->worker = w;
	s->mailbox = 1; /* the constructor */
	s->target = isola__strdup(target);
	s->opts = o;
	s->n_restarts = 0;
	isola_msg_init(&s->ctor_args);
	if (args != NULL)
		isola__msg_move(&s->ctor_args, args);
	int r = s->target ? isola__msg_copy(&t->args, &s->ctor_args) : ISOLA_ENOMEM;
	uint64_t id = make_id((uint32_t)index, s->generation);
	t->actor_id = id;
	t->epoch = s->epoch;
	if (r == 0)
		p->workers[w].n_actors++;
	pthread_mutex_unlock(&p->lock);
	if (r == 0)
		r = isola__task_enqueue(p, p->workers[w].private_q, t);
	if (r != 0) {
		pthread_mutex_lock(&p->lock);
		if (args != NULL)
			isola__msg_move(args, &s->ctor_args);
		isola_msg_clear(&s->ctor_args);
		isola__free(s->target);
		s->target = NULL;
		s->alive = 0;
		if (p->workers[w].n_actors > 0)
			p->workers[w].n_actors--;
		pthread_mutex_unlock(&p->lock);
		isola__task_free(t);
		return r;
	}
	out->id = id;
	return 0;
}

static int post(isola_pool *p, isola_actor a, enum task_kind kind, const char *method,
		isola_msg *args, isola_future **out)
{
	if (p == NULL)
		return ISOLA_EINVAL;
	struct task *t = isola__task_new(kind, method);
	if (t == NULL)
		return ISOLA_ENOMEM;
	isola_msg_init(&t->args);
	if (out != NULL) {
		t->future = isola__future_new(p);
		if (t->future == NULL) {
			isola__task_free(t);
			return ISOLA_ENOMEM;
		}
	}
	pthread_mutex_lock(&p->lock);
	struct actor_slot *s = lookup(p, a.id);
	if (s == NULL) {
		pthread_mutex_unlock(&p->lock);
		isola__task_free(t);
		return ISOLA_ECLOSED;
	}
	int w = s->worker;
	t->actor_id = a.id;
	t->epoch = isola__load_acquire(&s->epoch);
	if (kind == TASK_ACTOR_KILL)
		__atomic_add_fetch(&s->epoch, 1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&s->mailbox, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->lock);
	if (args != NULL)
		isola__msg_move(&t->args, args);
	/* Once enqueued, t belongs to the worker (it may be freed at once):
	 * keep what we hand back in locals. */
	isola_future *f = t->future;
	if (f != NULL)
		isola_future_retain(f);
	int r = isola__task_enqueue(p, p->workers[w].private_q, t);
	if (r != 0) {
		if (args != NULL)
			isola__msg_move(args, &t->args);
		if (f != NULL)
			isola_future_release(f);
		isola__actor_message_done(p, a.id);
		isola__task_free(t);
		return r;
	}
	if (kind == TASK_ACTOR_KILL) {
		/* Also stop what the actor is running now (a looping method
		 * or constructor): its worker's watchdog interrupts it. */
		__atomic_store_n(&p->workers[w].kill_actor, a.id, __ATOMIC_RELEASE);
		isola__pool_interrupt_requested(p);
	}
	if (out != NULL)
		*out = f;
	return 0;
}

int isola_actor_call(isola_pool *p, isola_actor a, const char *method, isola_msg *args,
		     isola_future **out)
{
	if (method == NULL || out == NULL)
		return ISOLA_EINVAL;
	return post(p, a, TASK_ACTOR_CALL, method, args, out);
}

int isola_actor_send(isola_pool *p, isola_actor a, const char *method, isola_msg *args)
{
	if (method == NULL)
		return ISOLA_EINVAL;
	return post(p, a, TASK_ACTOR_CALL, method, args, NULL);
}

int isola_actor_kill(isola_pool *p, isola_actor a)
{
	return post(p, a, TASK_ACTOR_KILL, NULL, NULL, NULL);
}

int isola_actor_stats(isola_pool *p, isola_actor a, uint64_t *depth, int *alive)
{
	if (p == NULL)
		return ISOLA_EINVAL;
	pthread_mutex_lock(&p->lock);
	struct actor_slot *s = lookup(p, a.id);
	if (depth != NULL)
		*depth = s ? isola__load_relaxed(&s->mailbox) : 0;
	if (alive != NULL)
		*alive = s != NULL;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void isola__actor_message_done(struct isola_pool *p, uint64_t id)
{
	pthread_mutex_lock(&p->lock);
	uint32_t index = (uint32_t)id;
	if (index < p->n_actor_slots && p->actors[index].generation == (uint32_t)(id >> 32) &&
	    p->actors[index].mailbox > 0)
		__atomic_sub_fetch(&p->actors[index].mailbox, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->lock);
}

void isola__actor_free_all(struct isola_pool *p)
{
	for (size_t i = 0; i < p->n_actor_slots; i++) {
		isola_msg_clear(&p->actors[i].ctor_args);
		isola_msg_clear(&p->actors[i].ctor_exc);
		isola__error_clear(&p->actors[i].ctor_err);
		isola__free(p->actors[i].target);
	}
	isola__free(p->actors);
	p->actors = NULL;
	p->n_actor_slots = 0;
}

/* ---- on the worker (its GIL held) ------------------------------------ */

/* Record a restart; false if the budget (max within window) is spent. */
static bool may_restart(struct actor_slot *s)
{
	int64_t now = isola__now_ns(), recent = 0;
	for (int i = 0; i < s->n_restarts && i < MAX_TRACKED_RESTARTS; i++)
		if (now - s->restarts[i] <= s->opts.window_ns)
			recent++;
	if (!s->opts.restart || recent >= s->opts.max_restarts)
		return false;
	s->restarts[s->n_restarts++ % MAX_TRACKED_RESTARTS] = now;
	return true;
}

/* Stop the actor for good (pool lock taken here). */
static void stop(struct worker *w, uint64_t id, const char *reason)
{
	struct isola_pool *p = w->pool;
	isola__actor_forget(id);
	pthread_mutex_lock(&p->lock);
	struct actor_slot *s = lookup(p, id);
	if (s != NULL) {
		s->alive = 0;
		isola_msg_clear(&s->ctor_args);
		isola__free(s->target);
		s->target = NULL;
		if (p->workers[w->index].n_actors > 0)
			p->workers[w->index].n_actors--;
	}
	pthread_mutex_unlock(&p->lock);
	monitor(p, id, "stopped", reason);
}

/* Construct (again, while the policy allows); false if it stopped. */
static bool construct(struct worker *w, uint64_t id, bool restarting, const char *why)
{
	struct isola_pool *p = w->pool;
	isola__codec_opts o = isola__codec_defaults;
	o.allow_pickle = !p->no_pickle;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		struct actor_slot *s = lookup(p, id);
		isola_msg args;
		char *target = s ? isola__strdup(s->target) : NULL;
		int ok = s && target && isola__msg_copy(&args, &s->ctor_args) == 0;
		pthread_mutex_unlock(&p->lock);
		if (!ok) {
			isola__free(target);
			return false;
		}
		if (restarting)
			monitor(p, id, "restarted", why);
		isola_msg exc;
		isola_msg_init(&exc);
		isola__error err = { 0 };
		int r = isola__actor_construct(id, target, &args, &o, &exc, &err);
		isola__free(target);
		isola_msg_clear(&args);
		if (r == 0)
			return true;
		char reason[600];
		snprintf(reason, sizeof(reason), "constructor failed: %s: %s",
			 err.type ? err.type : "Exception", err.message ? err.message : "");
		pthread_mutex_lock(&p->lock);
		s = lookup(p, id);
		bool again = s != NULL && may_restart(s);
		if (s != NULL && !again) { /* the calls queued behind it get this error */
			isola_msg_clear(&s->ctor_exc);
			isola__msg_move(&s->ctor_exc, &exc);
			isola__error_clear(&s->ctor_err);
			s->ctor_err = err;
			err = (isola__error){ 0 };
		}
		pthread_mutex_unlock(&p->lock);
		isola_msg_clear(&exc);
		isola__error_clear(&err);
		if (!again) {
			stop(w, id, reason);
			return false;
		}
		restarting = true;
		why = "constructor failed";
	}
}

/* The instance crashed (hook failed) or was killed: apply the policy. */
static void crashed(struct worker *w, uint64_t id, const char *reason)
{
	struct isola_pool *p = w->pool;
	isola__actor_forget(id);
	pthread_mutex_lock(&p->lock);
	struct actor_slot *s = lookup(p, id);
	bool again = s != NULL && may_restart(s);
	pthread_mutex_unlock(&p->lock);
	if (again)
		construct(w, id, true, reason);
	else
		stop(w, id, reason);
}

/* A send (no future) that failed: counted, since nobody is told. */
static void count_send_error(struct isola_pool *p)
{
	isola__add_relaxed(&p->send_errors, 1); /* a statistic: relaxed */
}

static void fail_closed(struct isola_pool *p, isola_future *f, const char *why)
{
	if (f == NULL) {
		count_send_error(p);
		return;
	}
	isola__error e = { isola__strdup("isola.ChannelClosed"), isola__strdup(why), NULL };
	isola__future_complete(f, ISOLA_ECLOSED, NULL, &e);
	isola__error_clear(&e);
}

/* A call to an actor whose constructor failed for good: its future gets
 * the constructor's exception (a copy).  False if that is not why the
 * actor is gone (or there is no future, or no memory). */
static bool fail_with_constructor_error(struct isola_pool *p, struct task *t)
{
	if (t->future == NULL)
		return false;
	isola_msg exc;
	isola__error err = { 0 };
	bool have = false;
	pthread_mutex_lock(&p->lock);
	uint32_t index = (uint32_t)t->actor_id;
	struct actor_slot *s = index < p->n_actor_slots ? &p->actors[index] : NULL;
	if (s != NULL && s->generation == (uint32_t)(t->actor_id >> 32) && !s->alive &&
	    s->ctor_err.type != NULL && isola__msg_copy(&exc, &s->ctor_exc) == 0) {
		err.type = isola__strdup(s->ctor_err.type);
		err.message = isola__strdup(s->ctor_err.message);
		err.traceback = isola__strdup(s->ctor_err.traceback);
		have = true;
	}
	pthread_mutex_unlock(&p->lock);
	if (!have)
		return false;
	isola__future_complete(t->future, ISOLA_EPYTHON, &exc, &err);
	isola_msg_clear(&exc);
	isola__error_clear(&err);
	return true;
}

static void call_method(struct worker *w, struct task *t)
{
	struct isola_pool *p = w->pool;
	pthread_mutex_lock(&p->lock);
	struct actor_slot *s = lookup(p, t->actor_id);
	bool current = s != NULL && isola__load_acquire(&s->epoch) == t->epoch;
	pthread_mutex_unlock(&p->lock);
	isola__codec_opts o = isola__codec_defaults;
	o.allow_pickle = !p->no_pickle;
	isola_msg res;
	isola_msg_init(&res);
	int r = current ? isola__actor_call_method(t->actor_id, t->target, &t->args, &o,
						   t->future ? &res : NULL)
			: ISOLA_ENOTFOUND;
	if (r == ISOLA_ENOTFOUND) {
		if (!fail_with_constructor_error(p, t))
			fail_closed(p, t->future, "the actor is dead, was killed, or failed to start");
		return;
	}
	if (r == 0) {
		if (t->future != NULL)
			isola__future_complete(t->future, 0, &res, NULL);
		return;
	}
	/* The method raised: the caller gets the error; the actor lives on
	 * unless its __isola_restart__ hook itself fails. */
	if (t->future == NULL)
		count_send_error(p);
	isola__complete_with_exception(w, t->future);
	char *text = NULL;
	if (isola__actor_restart_hook(t->actor_id, &text) != 0) {
		char reason[600];
		snprintf(reason, sizeof(reason), "__isola_restart__ failed: %s", text ? text : "?");
		crashed(w, t->actor_id, reason);
	}
	isola__free(text);
}

void isola__actor_run(struct worker *w, struct task *t)
{
	/* Taken off the mailbox: no longer counted as waiting. */
	isola__actor_message_done(w->pool, t->actor_id);
	switch (t->kind) {
	case TASK_ACTOR_NEW:
		construct(w, t->actor_id, false, NULL);
		break;
	case TASK_ACTOR_CALL:
		call_method(w, t);
		break;
	case TASK_ACTOR_KILL: {
		/* The kill is here: later messages (of a restarted instance)
		 * are not to be interrupted for it. */
		uint64_t id = t->actor_id;
		__atomic_compare_exchange_n(&w->kill_actor, &id, 0, false, __ATOMIC_ACQ_REL,
					    __ATOMIC_RELAXED);
		crashed(w, t->actor_id, "killed");
		break;
	}
	default:
		break;
	}
	isola__outcome_discard();
}
