/* bd_reflection.c - gRPC server reflection; see bd_reflection.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_log.h"
#include "bd_reflection.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

/* v1alpha is wire-identical to v1: the v1 code serves both paths. The paths
 * must be string literals: bd_grpc keeps pointers to them. */
#define PATH_V1      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
#define PATH_V1ALPHA "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

#define ERROR_MESSAGE_MAX   (BD_REFLECTION_NAME_LEN_MAX + 128)
#define RESPONSE_FILE_BYTES 16 /* a file's tag and length, plus slack */
#define UNPACK_WHY_MAX      256
#define SYMBOLS_INITIAL     256
#define EXTENSIONS_INITIAL  16

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_response;

typedef enum symbol_kind {
	SYMBOL_MESSAGE,
	SYMBOL_ENUM,
	SYMBOL_SERVICE,
	SYMBOL_OTHER, /* field, oneof, enum value, method, extension */
} symbol_kind;

typedef struct refl_file {
	const char *name;
	uint8_t *bytes; /* the packed FileDescriptorProto, source info included */
	size_t len;
	size_t *deps; /* direct dependencies, indices into bd_reflection.files */
	size_t n_deps;
	size_t *closure; /* this file, then every transitive dependency once */
	size_t n_closure;
} refl_file;

typedef struct refl_symbol {
	const char *name; /* fully qualified, without a leading dot */
	size_t file;
	symbol_kind kind;
} refl_symbol;

typedef struct refl_extension {
	const char *extendee; /* fully qualified, without a leading dot */
	int32_t number;
	size_t file;
} refl_extension;

struct bd_reflection {
	bd_arena mem; /* names, packed files, dependency lists */
	refl_file *files;
	size_t n_files;
	refl_file **files_by_name; /* sorted by name */
	refl_symbol *symbols;      /* malloc'd; sorted by name once built */
	size_t n_symbols, symbols_cap;
	refl_extension *extensions; /* malloc'd; sorted by (extendee, number) */
	size_t n_extensions, extensions_cap;
	Grpc__Reflection__V1__ServiceResponse *service_msgs;
	Grpc__Reflection__V1__ServiceResponse **service_ptrs;
	Grpc__Reflection__V1__ListServiceResponse list; /* the list_services answer */
	unsigned streams_open;
};

/* ---- building the index ---- */

/* Makes room for one more element in a malloc'd array of at most `max`. */
static int grow(void **array, size_t *cap, size_t n, size_t elem_size, size_t max, size_t initial)
{
	if (n < *cap)
		return 0;
	if (n >= max)
		return -E2BIG;
	size_t new_cap = *cap ? *cap * 2 : initial;
	if (new_cap > max)
		new_cap = max;
	void *p = realloc(*array, new_cap * elem_size);
	if (!p)
		return -ENOMEM;
	*array = p;
	*cap = new_cap;
	return 0;
}

/* "scope.name" (or "name" at the top level) in r->mem. */
static int qualify(bd_reflection *r, const char *scope, const char *name, const char **out)
{
	char buf[BD_REFLECTION_NAME_LEN_MAX + 1];
	int n;

	if (!name || !*name)
		return -EINVAL;
	if (*scope)
		n = snprintf(buf, sizeof(buf), "%s.%s", scope, name);
	else
		n = snprintf(buf, sizeof(buf), "%s", name);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(buf)) {
		bd_log_error("%s: a name in %s is longer than %d bytes", __func__, scope,
		             BD_REFLECTION_NAME_LEN_MAX);
		return -ENAMETOOLONG;
	}
	*out = bd_arena_strndup(&r->mem, buf, (size_t)n);
	return *out ? 0 : -ENOMEM;
}

static int add_symbol(bd_reflection *r, const char *scope, const char *name, symbol_kind kind,
                      size_t file, const char **fq)
{
	const char *qualified;
	int rc = qualify(r, scope, name, &qualified);

	if (rc != 0)
		return rc;
	rc = grow((void **)&r->symbols, &r->symbols_cap, r->n_symbols, sizeof(*r->symbols),
	          BD_REFLECTION_SYMBOLS_MAX, SYMBOLS_INITIAL);
	if (rc != 0)
		return rc;
	r->symbols[r->n_symbols++] = (refl_symbol){qualified, file, kind};
	if (fq)
		*fq = qualified;
	return 0;
}

static int index_extension(bd_reflection *r, const char *scope,
                           const Google__Protobuf__FieldDescriptorProto *f, size_t file)
{
	int rc = add_symbol(r, scope, f->name, SYMBOL_OTHER, file, NULL);

	if (rc != 0)
		return rc;
	if (!f->extendee || !*f->extendee || !f->has_number)
		return -EINVAL;
	const char *extendee = f->extendee[0] == '.' ? f->extendee + 1 : f->extendee;
	if (strlen(extendee) > BD_REFLECTION_NAME_LEN_MAX)
		return -ENAMETOOLONG;
	rc = grow((void **)&r->extensions, &r->extensions_cap, r->n_extensions,
	          sizeof(*r->extensions), BD_REFLECTION_EXTENSIONS_MAX, EXTENSIONS_INITIAL);
	if (rc != 0)
		return rc;
	extendee = bd_arena_strndup(&r->mem, extendee, strlen(extendee));
	if (!extendee)
		return -ENOMEM;
	r->extensions[r->n_extensions++] = (refl_extension){extendee, f->number, file};
	return 0;
}

/* Enum values are scoped like the enum itself (C++ rules), not inside it. */
static int index_enum(bd_reflection *r, const char *scope,
                      const Google__Protobuf__EnumDescriptorProto *e, size_t file)
{
	int rc = add_symbol(r, scope, e->name, SYMBOL_ENUM, file, NULL);

	for (size_t i = 0; rc == 0 && i < e->n_value; i++)
		rc = add_symbol(r, scope, e->value[i]->name, SYMBOL_OTHER, file, NULL);
	return rc;
}

static int index_message(bd_reflection *r, const char *scope,
                         const Google__Protobuf__DescriptorProto *m, size_t file, unsigned depth)
{
	const char *fq;
	int rc;

	if (depth > BD_REFLECTION_NESTING_MAX)
		return -E2BIG;
	rc = add_symbol(r, scope, m->name, SYMBOL_MESSAGE, file, &fq);
	for (size_t i = 0; rc == 0 && i < m->n_field; i++)
		rc = add_symbol(r, fq, m->field[i]->name, SYMBOL_OTHER, file, NULL);
	for (size_t i = 0; rc == 0 && i < m->n_oneof_decl; i++)
		rc = add_symbol(r, fq, m->oneof_decl[i]->name, SYMBOL_OTHER, file, NULL);
	for (size_t i = 0; rc == 0 && i < m->n_nested_type; i++)
		rc = index_message(r, fq, m->nested_type[i], file, depth + 1);
	for (size_t i = 0; rc == 0 && i < m->n_enum_type; i++)
		rc = index_enum(r, fq, m->enum_type[i], file);
	for (size_t i = 0; rc == 0 && i < m->n_extension; i++)
		rc = index_extension(r, fq, m->extension[i], file);
	return rc;
}

static int index_file(bd_reflection *r, const Google__Protobuf__FileDescriptorProto *fd,
                      size_t file)
{
	const char *package = fd->package ? fd->package : "";
	int rc = 0;

	if (strlen(package) > BD_REFLECTION_NAME_LEN_MAX)
		return -ENAMETOOLONG;
	for (size_t i = 0; rc == 0 && i < fd->n_message_type; i++)
		rc = index_message(r, package, fd->message_type[i], file, 1);
	for (size_t i = 0; rc == 0 && i < fd->n_enum_type; i++)
		rc = index_enum(r, package, fd->enum_type[i], file);
	for (size_t i = 0; rc == 0 && i < fd->n_service; i++) {
		const Google__Protobuf__ServiceDescriptorProto *svc = fd->service[i];
		const char *fq;
		rc = add_symbol(r, package, svc->name, SYMBOL_SERVICE, file, &fq);
		for (size_t k = 0; rc == 0 && k < svc->n_method; k++)
			rc = add_symbol(r, fq, svc->method[k]->name, SYMBOL_OTHER, file, NULL);
	}
	for (size_t i = 0; rc == 0 && i < fd->n_extension; i++)
		rc = index_extension(r, package, fd->extension[i], file);
	return rc;
}

/* Packs one file once: this is what every response sends. */
static int add_file(bd_reflection *r, const Google__Protobuf__FileDescriptorProto *fd, size_t i)
{
	refl_file *f = &r->files[i];

	if (!fd->name || !*fd->name)
		return -EINVAL;
	if (strlen(fd->name) > BD_REFLECTION_NAME_LEN_MAX)
		return -ENAMETOOLONG;
	f->name = bd_arena_strndup(&r->mem, fd->name, strlen(fd->name));
	if (!f->name)
		return -ENOMEM;
	f->len = google__protobuf__file_descriptor_proto__get_packed_size(fd);
	if (f->len > BD_REFLECTION_RESPONSE_BYTES_MAX)
		return -E2BIG;
	f->bytes = bd_arena_alloc(&r->mem, f->len);
	if (!f->bytes)
		return -ENOMEM;
	if (google__protobuf__file_descriptor_proto__pack(fd, f->bytes) != f->len)
		return -EINVAL;
	return index_file(r, fd, i);
}

static int file_cmp(const void *a, const void *b)
{
	const refl_file *const *fa = a;
	const refl_file *const *fb = b;
	return strcmp((*fa)->name, (*fb)->name);
}

static int symbol_cmp(const void *a, const void *b)
{
	const refl_symbol *sa = a;
	const refl_symbol *sb = b;
	return strcmp(sa->name, sb->name);
}

static int extension_cmp(const void *a, const void *b)
{
	const refl_extension *ea = a;
	const refl_extension *eb = b;
	int c = strcmp(ea->extendee, eb->extendee);

	if (c != 0)
		return c;
	return (ea->number > eb->number) - (ea->number < eb->number);
}

static int find_file(const bd_reflection *r, const char *name, size_t *out)
{
	refl_file key = {.name = name};
	const refl_file *key_ptr = &key;
	refl_file *const *hit = bsearch(&key_ptr, r->files_by_name, r->n_files,
	                                sizeof(*r->files_by_name), file_cmp);

	if (!hit)
		return -ENOENT;
	*out = (size_t)(*hit - r->files);
	return 0;
}

static const refl_symbol *find_symbol(const bd_reflection *r, const char *name)
{
	refl_symbol key = {.name = name};

	if (r->n_symbols == 0) /* bsearch wants a non-NULL base */
		return NULL;
	return bsearch(&key, r->symbols, r->n_symbols, sizeof(*r->symbols), symbol_cmp);
}

static const refl_extension *find_extension(const bd_reflection *r, const char *extendee,
                                            int32_t number)
{
	refl_extension key = {.extendee = extendee, .number = number};

	if (r->n_extensions == 0) /* bsearch wants a non-NULL base */
		return NULL;
	return bsearch(&key, r->extensions, r->n_extensions, sizeof(*r->extensions), extension_cmp);
}

static int resolve_deps(bd_reflection *r, const Google__Protobuf__FileDescriptorProto *fd, size_t i)
{
	refl_file *f = &r->files[i];

	if (fd->n_dependency > BD_REFLECTION_FILES_MAX)
		return -E2BIG;
	f->deps = bd_arena_alloc(&r->mem, fd->n_dependency * sizeof(*f->deps));
	if (!f->deps)
		return -ENOMEM;
	for (size_t k = 0; k < fd->n_dependency; k++) {
		if (find_file(r, fd->dependency[k], &f->deps[k]) != 0) {
			bd_log_error("%s: %s imports %s, which is not in the descriptor set",
			             __func__, f->name, fd->dependency[k]);
			return -EINVAL;
		}
	}
	f->n_deps = fd->n_dependency;
	return 0;
}

/* Pre-order: the file, then its dependencies depth first (as grpc++ does).
 * The depth is bounded by the number of files: each level is a new one. */
static void closure_visit(const bd_reflection *r, size_t file, bool *seen, size_t *out, size_t *n)
{
	if (seen[file])
		return;
	seen[file] = true;
	out[(*n)++] = file;
	for (size_t k = 0; k < r->files[file].n_deps; k++)
		closure_visit(r, r->files[file].deps[k], seen, out, n);
}

static int build_closures(bd_reflection *r)
{
	bool *seen = calloc(r->n_files, sizeof(*seen));
	size_t *order = calloc(r->n_files, sizeof(*order));
	int rc = 0;

	if (!seen || !order) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < r->n_files; i++) {
		refl_file *f = &r->files[i];
		size_t n = 0, bytes = 0;
		memset(seen, 0, r->n_files * sizeof(*seen));
		closure_visit(r, i, seen, order, &n);
		for (size_t k = 0; k < n; k++)
			bytes += r->files[order[k]].len + RESPONSE_FILE_BYTES;
		if (bytes > BD_REFLECTION_RESPONSE_BYTES_MAX) {
			bd_log_error("%s: %s and its imports exceed %d bytes", __func__, f->name,
			             BD_REFLECTION_RESPONSE_BYTES_MAX);
			rc = -E2BIG;
			goto out;
		}
		f->closure = bd_arena_alloc(&r->mem, n * sizeof(*f->closure));
		if (!f->closure) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(f->closure, order, n * sizeof(*f->closure));
		f->n_closure = n;
	}
out:
	free(seen);
	free(order);
	return rc;
}

static int check_unique(const bd_reflection *r)
{
	for (size_t i = 1; i < r->n_files; i++) {
		if (strcmp(r->files_by_name[i - 1]->name, r->files_by_name[i]->name) == 0) {
			bd_log_error("%s: file %s appears twice", __func__,
			             r->files_by_name[i]->name);
			return -EINVAL;
		}
	}
	for (size_t i = 1; i < r->n_symbols; i++) {
		if (strcmp(r->symbols[i - 1].name, r->symbols[i].name) == 0) {
			bd_log_error("%s: symbol %s is defined twice", __func__,
			             r->symbols[i].name);
			return -EINVAL;
		}
	}
	for (size_t i = 1; i < r->n_extensions; i++) {
		if (extension_cmp(&r->extensions[i - 1], &r->extensions[i]) == 0) {
			bd_log_error("%s: extension %d of %s is defined twice", __func__,
			             r->extensions[i].number, r->extensions[i].extendee);
			return -EINVAL;
		}
	}
	return 0;
}

static int add_services(bd_reflection *r, const char *const *services, size_t n)
{
	r->service_msgs = bd_arena_alloc(&r->mem, n * sizeof(*r->service_msgs));
	r->service_ptrs = bd_arena_alloc(&r->mem, n * sizeof(*r->service_ptrs));
	if (!r->service_msgs || !r->service_ptrs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *name = services[i];
		if (!name ||
		    strnlen(name, BD_REFLECTION_NAME_LEN_MAX + 1) > BD_REFLECTION_NAME_LEN_MAX)
			return -EINVAL;
		const refl_symbol *sym = find_symbol(r, name);
		if (!sym || sym->kind != SYMBOL_SERVICE) {
			bd_log_error("%s: service %s is not in the descriptor set", __func__, name);
			return -ENOENT;
		}
		grpc__reflection__v1__service_response__init(&r->service_msgs[i]);
		r->service_msgs[i].name = (char *)sym->name;
		r->service_ptrs[i] = &r->service_msgs[i];
	}
	grpc__reflection__v1__list_service_response__init(&r->list);
	r->list.n_service = n;
	r->list.service = r->service_ptrs;
	return 0;
}

static int build(bd_reflection *r, const Google__Protobuf__FileDescriptorSet *set,
                 const char *const *services, size_t n_services)
{
	int rc = 0;

	if (set->n_file == 0)
		return -EINVAL;
	if (set->n_file > BD_REFLECTION_FILES_MAX)
		return -E2BIG;
	r->n_files = set->n_file;
	r->files = bd_arena_alloc(&r->mem, r->n_files * sizeof(*r->files));
	r->files_by_name = bd_arena_alloc(&r->mem, r->n_files * sizeof(*r->files_by_name));
	if (!r->files || !r->files_by_name)
		return -ENOMEM;
	for (size_t i = 0; rc == 0 && i < r->n_files; i++) {
		rc = add_file(r, set->file[i], i);
		r->files_by_name[i] = &r->files[i];
	}
	if (rc != 0)
		return rc;
	qsort(r->files_by_name, r->n_files, sizeof(*r->files_by_name), file_cmp);
	if (r->n_symbols > 0)
		qsort(r->symbols, r->n_symbols, sizeof(*r->symbols), symbol_cmp);
	if (r->n_extensions > 0)
		qsort(r->extensions, r->n_extensions, sizeof(*r->extensions), extension_cmp);
	rc = check_unique(r);
	for (size_t i = 0; rc == 0 && i < r->n_files; i++)
		rc = resolve_deps(r, set->file[i], i);
	if (rc == 0)
		rc = build_closures(r);
	if (rc == 0)
		rc = add_services(r, services, n_services);
	return rc;
}

int bd_reflection_create(const unsigned char *set, size_t len, const char *const *services,
                         size_t n_services, bd_reflection **out)
{
	Google__Protobuf__FileDescriptorSet *fds = NULL;
	bd_reflection *r = NULL;
	int rc;

	*out = NULL;
	if (!set || len == 0 || (n_services > 0 && !services))
		return -EINVAL;
	if (n_services > BD_REFLECTION_SERVICES_MAX)
		return -E2BIG;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	bd_arena_init(&r->mem);
	fds = google__protobuf__file_descriptor_set__unpack(NULL, len, set);
	if (!fds) {
		bd_log_error("%s: the descriptor set is not a valid FileDescriptorSet", __func__);
		rc = -EINVAL;
		goto fail;
	}
	rc = build(r, fds, services, n_services);
	if (rc != 0)
		goto fail;
	google__protobuf__file_descriptor_set__free_unpacked(fds, NULL);
	bd_log_debug("reflection: %zu files, %zu symbols, %zu extensions, %zu services", r->n_files,
	             r->n_symbols, r->n_extensions, n_services);
	*out = r;
	return 0;
fail:
	bd_log_error("%s: cannot index the descriptor set: %s", __func__, strerror(-rc));
	if (fds)
		google__protobuf__file_descriptor_set__free_unpacked(fds, NULL);
	bd_reflection_destroy(r);
	return rc;
}

void bd_reflection_destroy(bd_reflection *r)
{
	if (!r)
		return;
	if (r->streams_open > 0) {
		/* A stream would use r after the free: leak it instead. */
		bd_log_error("%s: %u reflection streams still open; not freed", __func__,
		             r->streams_open);
		return;
	}
	free(r->symbols);
	free(r->extensions);
	bd_arena_reset(&r->mem);
	free(r);
}

/* ---- answering one request ---- */

static int set_error(refl_response *resp, bd_arena *a, grpc_status_code code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int set_error(refl_response *resp, bd_arena *a, grpc_status_code code, const char *fmt, ...)
{
	Grpc__Reflection__V1__ErrorResponse *e = bd_arena_alloc(a, sizeof(*e));
	char *message = bd_arena_alloc(a, ERROR_MESSAGE_MAX);
	va_list ap;

	if (!e || !message)
		return -ENOMEM;
	va_start(ap, fmt);
	(void)vsnprintf(message, ERROR_MESSAGE_MAX, fmt, ap);
	va_end(ap);
	grpc__reflection__v1__error_response__init(e);
	e->error_code = (int32_t)code;
	e->error_message = message;
	resp->message_response_case =
	        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
	resp->error_response = e;
	return 0;
}

static int set_files(const bd_reflection *r, size_t file, refl_response *resp, bd_arena *a)
{
	const refl_file *f = &r->files[file];
	Grpc__Reflection__V1__FileDescriptorResponse *fdr = bd_arena_alloc(a, sizeof(*fdr));
	ProtobufCBinaryData *blobs = bd_arena_alloc(a, f->n_closure * sizeof(*blobs));

	if (!fdr || !blobs)
		return -ENOMEM;
	for (size_t k = 0; k < f->n_closure; k++) {
		blobs[k].data = r->files[f->closure[k]].bytes;
		blobs[k].len = r->files[f->closure[k]].len;
	}
	grpc__reflection__v1__file_descriptor_response__init(fdr);
	fdr->n_file_descriptor_proto = f->n_closure;
	fdr->file_descriptor_proto = blobs;
	resp->message_response_case =
	        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
	resp->file_descriptor_response = fdr;
	return 0;
}

static int set_extension_numbers(const bd_reflection *r, const char *type, refl_response *resp,
                                 bd_arena *a)
{
	Grpc__Reflection__V1__ExtensionNumberResponse *enr = bd_arena_alloc(a, sizeof(*enr));
	size_t first = r->n_extensions, n = 0;

	if (!enr)
		return -ENOMEM;
	grpc__reflection__v1__extension_number_response__init(enr);
	for (size_t i = 0; i < r->n_extensions; i++) { /* sorted: one run */
		if (strcmp(r->extensions[i].extendee, type) == 0) {
			if (n++ == 0)
				first = i;
		}
	}
	if (n > 0) {
		enr->extension_number = bd_arena_alloc(a, n * sizeof(*enr->extension_number));
		if (!enr->extension_number)
			return -ENOMEM;
		for (size_t k = 0; k < n; k++)
			enr->extension_number[k] = r->extensions[first + k].number;
	}
	enr->n_extension_number = n;
	enr->base_type_name = (char *)type;
	resp->message_response_case =
	        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
	resp->all_extension_numbers_response = enr;
	return 0;
}

static bool name_too_long(const char *name)
{
	return strnlen(name, BD_REFLECTION_NAME_LEN_MAX + 1) > BD_REFLECTION_NAME_LEN_MAX;
}

/* Fills `resp` (memory from `a`, pointing into `req` and r). 0 or -ENOMEM. */
static int answer(const bd_reflection *r, refl_request *req, refl_response *resp, bd_arena *a)
{
	const Grpc__Reflection__V1__ExtensionRequest *ext;
	const refl_extension *e;
	const refl_symbol *sym;
	const char *name = "";
	int32_t number = 0;
	size_t file;

	resp->valid_host = req->host;
	resp->original_request = req;
	switch (req->message_request_case) {
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
		/* all three are strings of the same union */
		name = req->file_by_filename ? req->file_by_filename : "";
		break;
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
		ext = req->file_containing_extension;
		name = ext && ext->containing_type ? ext->containing_type : "";
		number = ext ? ext->extension_number : 0;
		break;
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
		resp->message_response_case =
		        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
		resp->list_services_response =
		        (Grpc__Reflection__V1__ListServiceResponse *)&r->list;
		return 0;
	default:
		return set_error(resp, a, GRPC_STATUS_UNIMPLEMENTED,
		                 "the request has no message_request this server knows");
	}
	if (name_too_long(name))
		return set_error(resp, a, GRPC_STATUS_INVALID_ARGUMENT,
		                 "the name is longer than %d bytes", BD_REFLECTION_NAME_LEN_MAX);

	switch (req->message_request_case) {
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
		if (find_file(r, name, &file) != 0)
			return set_error(resp, a, GRPC_STATUS_NOT_FOUND, "file not found: %s",
			                 name);
		return set_files(r, file, resp, a);
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
		sym = find_symbol(r, name);
		if (!sym)
			return set_error(resp, a, GRPC_STATUS_NOT_FOUND, "symbol not found: %s",
			                 name);
		return set_files(r, sym->file, resp, a);
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
		sym = find_symbol(r, name);
		if (!sym || sym->kind != SYMBOL_MESSAGE)
			return set_error(resp, a, GRPC_STATUS_NOT_FOUND,
			                 "message type not found: %s", name);
		return set_extension_numbers(r, sym->name, resp, a);
	default: /* FILE_CONTAINING_EXTENSION */
		e = find_extension(r, name, number);
		if (!e)
			return set_error(resp, a, GRPC_STATUS_NOT_FOUND,
			                 "extension not found: %s %d", name, (int)number);
		return set_files(r, e->file, resp, a);
	}
}

/* ---- one reflection stream ----
 *
 * Batches: RECV_CLOSE_ON_SERVER alone at the start (completes when the call
 * ends), then one batch at a time on io_tag: read, write, read, ..., and
 * finally the status. Any failed batch or an early end of the call cancels
 * the call; the stream is freed when no batch is outstanding. */

typedef enum stream_state {
	STREAM_READING,
	STREAM_WRITING,
	STREAM_FINISHING,
} stream_state;

typedef struct refl_stream {
	bd_reflection *r;
	grpc_call *call;
	bd_tag io_tag;    /* the read, write or status batch in flight */
	bd_tag close_tag; /* RECV_CLOSE_ON_SERVER */
	stream_state state;
	unsigned outstanding; /* batches started and not completed: 0 to 2 */
	bool metadata_sent;
	bool closed;  /* close_tag completed: the call has ended */
	bool aborted; /* cancelled by us; no new batch starts */
	int cancelled;
	unsigned requests;
	grpc_byte_buffer *recv;
	grpc_byte_buffer *send;
	grpc_slice status_details;
	bd_arena arena; /* one request and its response; reset after each */
} refl_stream;

static void stream_maybe_free(refl_stream *s)
{
	if (s->outstanding > 0)
		return;
	grpc_call_unref(s->call);
	if (s->recv)
		grpc_byte_buffer_destroy(s->recv);
	if (s->send)
		grpc_byte_buffer_destroy(s->send);
	grpc_slice_unref(s->status_details);
	bd_arena_reset(&s->arena);
	s->r->streams_open--;
	free(s);
}

static void stream_abort(refl_stream *s)
{
	if (!s->aborted && !s->closed)
		(void)grpc_call_cancel(s->call, NULL);
	s->aborted = true;
	stream_maybe_free(s);
}

static void stream_start_io(refl_stream *s, const grpc_op *ops, size_t n, stream_state next)
{
	s->state = next;
	s->outstanding++;
	grpc_call_error e = grpc_call_start_batch(s->call, ops, n, &s->io_tag, NULL);
	if (e != GRPC_CALL_OK) {
		s->outstanding--;
		bd_log_warn("%s: reflection stream: grpc_call_error %d", __func__, (int)e);
		stream_abort(s);
	}
}

/* Adds SEND_INITIAL_METADATA to the first batch. */
static size_t stream_metadata_op(refl_stream *s, grpc_op *ops)
{
	if (s->metadata_sent)
		return 0;
	s->metadata_sent = true;
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	return 1;
}

static void stream_finish(refl_stream *s, grpc_status_code code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void stream_finish(refl_stream *s, grpc_status_code code, const char *fmt, ...)
{
	char message[ERROR_MESSAGE_MAX];
	grpc_op ops[2];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	(void)vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (code != GRPC_STATUS_OK)
		bd_log_debug("reflection stream: %s: %s", bd_status_name(code), message);
	memset(ops, 0, sizeof(ops));
	grpc_slice_unref(s->status_details);
	s->status_details = grpc_slice_from_copied_string(message);
	n = stream_metadata_op(s, ops);
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n++].data.send_status_from_server.status_details = &s->status_details;
	stream_start_io(s, ops, n, STREAM_FINISHING);
}

static void stream_read(refl_stream *s)
{
	grpc_op ops[2];
	size_t n;

	memset(ops, 0, sizeof(ops));
	n = stream_metadata_op(s, ops);
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n++].data.recv_message.recv_message = &s->recv;
	stream_start_io(s, ops, n, STREAM_READING);
}

static void stream_handle(refl_stream *s)
{
	grpc_byte_buffer *bb = s->recv;
	char why[UNPACK_WHY_MAX];
	grpc_op op;
	int rc;

	s->recv = NULL;
	if (++s->requests > BD_REFLECTION_REQUESTS_MAX) {
		grpc_byte_buffer_destroy(bb);
		stream_finish(s, GRPC_STATUS_RESOURCE_EXHAUSTED,
		              "more than %d requests on one reflection stream; open a new stream",
		              BD_REFLECTION_REQUESTS_MAX);
		return;
	}
	refl_request *req = (refl_request *)bd_unpack(
	        &grpc__reflection__v1__server_reflection_request__descriptor, bb, &s->arena, why,
	        sizeof(why));
	grpc_byte_buffer_destroy(bb);
	if (!req) {
		bd_arena_reset(&s->arena);
		stream_finish(s, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
		return;
	}
	refl_response resp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
	rc = answer(s->r, req, &resp, &s->arena);
	if (rc == 0 && grpc__reflection__v1__server_reflection_response__get_packed_size(&resp) >
	                       BD_REFLECTION_RESPONSE_BYTES_MAX)
		rc = -E2BIG;
	if (rc == 0)
		rc = bd_pack(&resp.base, &s->send);
	bd_arena_reset(&s->arena); /* the response is packed: nothing points there */
	if (rc != 0) {
		stream_finish(s, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s",
		              rc == -E2BIG ? "the reflection response would be too large"
		                           : "out of memory");
		return;
	}
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = s->send;
	stream_start_io(s, &op, 1, STREAM_WRITING);
}

static void on_stream_io(bd_tag *tag, bool ok)
{
	refl_stream *s = bd_container_of(tag, refl_stream, io_tag);

	s->outstanding--;
	if (s->send) { /* a write completed */
		grpc_byte_buffer_destroy(s->send);
		s->send = NULL;
	}
	if (s->state == STREAM_FINISHING) {
		if (ok)
			stream_maybe_free(s);
		else
			stream_abort(s); /* make sure the call ends: RECV_CLOSE completes */
		return;
	}
	if (!ok || s->aborted || s->closed) {
		bd_log_debug("reflection stream ended by the client or the server's shutdown");
		stream_abort(s);
		return;
	}
	if (s->state == STREAM_WRITING)
		stream_read(s);
	else if (!s->recv) /* the client half-closed */
		stream_finish(s, GRPC_STATUS_OK, "%s", "");
	else
		stream_handle(s);
}

static void on_stream_closed(bd_tag *tag, bool ok)
{
	refl_stream *s = bd_container_of(tag, refl_stream, close_tag);

	(void)ok;
	s->outstanding--;
	s->closed = true;
	stream_maybe_free(s);
}

static void stream_start(void *ctx, grpc_call *call)
{
	bd_reflection *r = ctx;
	refl_stream *s = calloc(1, sizeof(*s));
	grpc_op op;

	if (!s) {
		bd_log_error("%s: out of memory for a reflection stream", __func__);
		(void)grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		                                   "out of memory", NULL);
		grpc_call_unref(call);
		return;
	}
	s->r = r;
	s->call = call;
	s->io_tag.fn = on_stream_io;
	s->close_tag.fn = on_stream_closed;
	s->status_details = grpc_empty_slice();
	bd_arena_init(&s->arena);
	r->streams_open++;

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &s->cancelled;
	s->outstanding++;
	grpc_call_error e = grpc_call_start_batch(call, &op, 1, &s->close_tag, NULL);
	if (e != GRPC_CALL_OK) {
		s->outstanding--;
		bd_log_warn("%s: reflection stream: grpc_call_error %d", __func__, (int)e);
		stream_abort(s);
		return;
	}
	if (r->streams_open > BD_REFLECTION_STREAMS_MAX) {
		stream_finish(s, GRPC_STATUS_RESOURCE_EXHAUSTED,
		              "budgetd is at its limit of %d reflection streams; retry later",
		              BD_REFLECTION_STREAMS_MAX);
		return;
	}
	stream_read(s);
}

int bd_reflection_register(bd_reflection *r, bd_server *server)
{
	int rc = bd_server_add_stream(server, PATH_V1, stream_start, r);

	if (rc == 0)
		rc = bd_server_add_stream(server, PATH_V1ALPHA, stream_start, r);
	return rc;
}
