# husk's exec stub, x86_64 Linux, no libc: the program a container's process runs from a
# sealed memfd just before its own, so that no /proc/PID/exe of it (and no "#!/proc/self/exe"
# interpreter) is ever the husk binary on the host (CVE-2019-5736). See exec_stub.rs; the
# bytes there are this file assembled: as --64 -o s.o exec_stub.S && objcopy -O binary -j .text s.o s.bin
#
# argv: MAGIC FD PATH ARGV0 [ARGS...]; envp is passed on.
#   MAGIC  "huskexe" (8 bytes with the NUL); anything else exits 126 at once (an image script
#          whose interpreter is /proc/self/exe runs this stub again: it must not loop).
#   FD     the sync channel, decimal: made close-on-exec, so it closes when PATH starts.
# execve(PATH, &ARGV0, envp). When that fails: one record [7][errno, u32 LE][PATH] on FD (a
# SOCK_SEQPACKET socket), or, when nobody listens any more, "husk: container init: exec PATH:
# errno N" on stderr; exit 127.
	.intel_syntax noprefix
	.text
	.globl	_start
_start:
	mov	rbx, [rsp]			# argc
	lea	r12, [rsp + 8]			# argv
	cmp	rbx, 4
	jb	usage
	mov	rax, [r12]
	mov	rax, [rax]			# the first 8 bytes of argv[0]
	movabs	rcx, 0x006578656b737568	# "huskexe\0", little-endian
	cmp	rax, rcx
	jne	usage
	mov	rsi, [r12 + 8]			# FD, decimal
	xor	r13d, r13d
parse:
	movzx	eax, byte ptr [rsi]
	test	eax, eax
	jz	parsed
	sub	eax, '0'
	imul	r13d, r13d, 10
	add	r13d, eax
	inc	rsi
	jmp	parse
parsed:
	mov	eax, 72				# fcntl(FD, F_SETFD, FD_CLOEXEC)
	mov	edi, r13d
	mov	esi, 2
	mov	edx, 1
	syscall
	test	rax, rax
	jns	exec
	mov	eax, 3				# refused: close(FD), so it cannot leak
	mov	edi, r13d
	syscall
	mov	r13d, -1
exec:
	mov	rdi, [r12 + 16]			# execve(PATH, &ARGV0, envp)
	lea	rsi, [r12 + 24]
	lea	rdx, [r12 + rbx * 8 + 8]
	mov	eax, 59
	syscall
	neg	eax
	mov	r14d, eax			# errno
	mov	r15, [r12 + 16]			# PATH
	xor	ebp, ebp			# strlen(PATH)
len:
	cmp	byte ptr [r15 + rbp], 0
	je	report
	inc	rbp
	jmp	len
report:
	sub	rsp, 128
	mov	byte ptr [rsp], 7		# [7][errno]
	mov	[rsp + 1], r14d
	mov	[rsp + 16], rsp			# iov[0] = {record, 5}
	mov	qword ptr [rsp + 24], 5
	mov	[rsp + 32], r15			# iov[1] = {PATH, len}
	mov	[rsp + 40], rbp
	xor	eax, eax			# struct msghdr at rsp+48: no name, 2 iovs, no control
	mov	[rsp + 48], rax
	mov	[rsp + 56], rax
	lea	rcx, [rsp + 16]
	mov	[rsp + 64], rcx
	mov	qword ptr [rsp + 72], 2
	mov	[rsp + 80], rax
	mov	[rsp + 88], rax
	mov	[rsp + 96], rax
	mov	eax, 46				# sendmsg(FD, &msg, MSG_NOSIGNAL)
	mov	edi, r13d
	lea	rsi, [rsp + 48]
	mov	edx, 0x4000
	syscall
	test	rax, rax
	jns	fail
	lea	rsi, [rip + prefix]		# nobody listens: stderr
	mov	edx, prefix_end - prefix
	call	say
	mov	rsi, r15
	mov	rdx, rbp
	call	say
	lea	rsi, [rip + middle]
	mov	edx, middle_end - middle
	call	say
	lea	rdi, [rsp + 127]		# errno in decimal, backwards from rsp+127
	mov	byte ptr [rdi], 10		# "\n"
	mov	eax, r14d
	mov	ecx, 10
digit:
	xor	edx, edx
	div	ecx
	add	dl, '0'
	dec	rdi
	mov	[rdi], dl
	test	eax, eax
	jnz	digit
	mov	rsi, rdi
	lea	rdx, [rsp + 128]
	sub	rdx, rdi
	call	say
fail:
	mov	eax, 231			# exit_group(127)
	mov	edi, 127
	syscall
usage:
	mov	eax, 231			# exit_group(126)
	mov	edi, 126
	syscall
say:						# write(2, rsi, rdx)
	mov	eax, 1
	mov	edi, 2
	syscall
	ret
prefix:
	.ascii	"husk: container init: exec "
prefix_end:
middle:
	.ascii	": errno "
middle_end:
