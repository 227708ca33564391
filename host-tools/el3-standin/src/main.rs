//! The EL3 stand-in `make bench` boots the SP image against (see the library docs for where it
//! lives and what the host gives it): a loader and a monitor in one page of assembly, run by
//! QEMU `virt` (`secure=on`, `-icount shift=0`) at EL3 with the MMU off.
//!
//! 1. Copies the SP package from normal RAM to its load address and enters its entry point in
//!    secure EL1h (MMU and caches off, interrupts masked, x0 = the boot-info blob at the load
//!    address), as Hafnium starts an S-EL1 partition; the counter is read just before the
//!    `ERET`.
//! 2. Answers every `SMC` as an SPMC would at boot: `FFA_VERSION` with 1.2, `FFA_ID_GET` with
//!    0x8001, `FFA_CONSOLE_LOG` (both widths) by printing the characters on UART0,
//!    `FFA_RXTX_MAP` and `FFA_SECONDARY_EP_REGISTER` with success, any other FF-A call with `FFA_ERROR(NOT_SUPPORTED)` (and a
//!    line saying so), anything else with SMCCC NOT_SUPPORTED. Each answer's own instructions
//!    are bracketed by two counter reads and added up.
//! 3. At the first `FFA_MSG_WAIT` prints `el3-standin: FFA_MSG_WAIT after N instructions, S
//!    SMCs, counter F Hz` and ends QEMU (semihosting `SYS_EXIT`, status 0). `FFA_ERROR` from
//!    the partition (its start-up failed) or any exception but an `SMC` prints `el3-standin:
//!    FAILED` and ends QEMU with status 1.
//!
//! With `-icount shift=0` every instruction advances QEMU's virtual clock by 1 ns, and the
//! generic counter runs at 1 GHz (QEMU's `max` CPU), so the counter counts instructions
//! exactly (QEMU ends a translation block at each counter read under icount). N is the number
//! of instructions executed from the partition's first instruction up to and including the
//! `SMC` of its first `FFA_MSG_WAIT`, those of the stand-in taken out: the counter difference
//! between the read before the first `ERET` and the read in the `FFA_MSG_WAIT` handler, minus
//! the bracketed answers, minus the stand-in's instructions outside the brackets, which the
//! listing fixes: [`BOOT_TAIL`] once, [`ENTRY_HEAD`] per `SMC` and [`EXIT_TAIL`] per answered
//! `SMC`. The host checks F (another counter rate would scale the count) and reports N.
//!
//! Registers: an answer sets x0..x17 (the unused ones zero, as FF-A asks) and preserves x18..x30
//! and SP_EL1; the stand-in itself uses no floating point, so the partition's SIMD registers
//! are untouched. Host builds compile an empty stub.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// Host stub: the stand-in only runs on `aarch64-unknown-none`.
#[cfg(not(target_os = "none"))]
fn main() {}

/// The stand-in's instructions from the first counter read to the partition's first
/// instruction (`mrs`, `str`, `eret`).
#[cfg(target_os = "none")]
const BOOT_TAIL: u64 = 3;
/// The stand-in's instructions on an `SMC` before its counter read (`sub`, `stp`).
#[cfg(target_os = "none")]
const ENTRY_HEAD: u64 = 2;
/// The stand-in's instructions from its second counter read to the `ERET` that resumes the
/// partition, inclusive (`mrs`, `add`, `stp`, 15 `ldp`, `ldr`, `add`, `eret`).
#[cfg(target_os = "none")]
const EXIT_TAIL: u64 = 21;

#[cfg(target_os = "none")]
mod image {
    use el3_standin::{MAX_PACKAGE, PARAMS_ADDR, STAGING_ADDR, STANDIN_ADDR};

    /// UART0 of QEMU `virt` (PL011), which secure accesses reach too.
    const UART: u64 = 0x0900_0000;

    const _: () =
        assert!(STANDIN_ADDR.is_multiple_of(0x1_0000) && PARAMS_ADDR == STANDIN_ADDR + 0x1000);

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    // The state page at PARAMS_ADDR: +0x00 package length, +0x08 load address, +0x10 entry
    // point (written by the host), +0x18 counter at the partition's entry, +0x20 instructions
    // inside the brackets so far, +0x28 SMCs answered so far, +0x30 the semihosting exit
    // block. The stack (one frame of x0..x30 and the entry counter per SMC) grows down from
    // the end of the page.
    core::arch::global_asm!(
        ".macro mov_addr, reg:req, value:req",
        "    movz \\reg, #((\\value) >> 16), lsl #16",
        "    movk \\reg, #((\\value) & 0xffff)",
        ".endm",
        // Writes w7 to the UART (x4 = its base); clobbers w8.
        ".macro putc",
        "88: ldr w8, [x4, #0x18]",
        "    tbnz w8, #5, 88b",
        "    str w7, [x4]",
        ".endm",
        ".section .text.standin, \"ax\"",
        ".global standin_entry",
        "standin_entry:",
        "    mov_addr x4, {uart}",
        "    mov w1, #0x301",
        "    str w1, [x4, #0x30]",
        "    mov_addr x20, {params}",
        "    ldp x3, x2, [x20]",
        "    mov_addr x1, {max_package}",
        "    cmp x3, x1",
        "    b.hi bad_params",
        "    cbz x3, bad_params",
        "    mov_addr x1, {staging}",
        "0:  ldr x5, [x1], #8",
        "    str x5, [x2], #8",
        "    subs x3, x3, #8",
        "    b.hi 0b",
        "    dsb sy",
        "    adr x1, vectors",
        "    msr vbar_el3, x1",
        "    mov_addr x1, {stack_top}",
        "    mov sp, x1",
        // SCR_EL3: RW (EL1 is AArch64), NS = 0 (the partition runs secure), SMD = 0.
        "    mov x1, #0x400",
        "    msr scr_el3, x1",
        // SPSR_EL3: EL1h, D A I F masked.
        "    mov x1, #0x3c5",
        "    msr spsr_el3, x1",
        "    ldr x1, [x20, #0x10]",
        "    msr elr_el3, x1",
        "    ldr x0, [x20, #0x08]",
        "    stp xzr, xzr, [x20, #0x20]",
        "    isb",
        // BOOT_TAIL: from this read to the partition's first instruction.
        "    mrs x1, cntpct_el0",
        "    str x1, [x20, #0x18]",
        "    eret",
        "bad_params:",
        "    adr x9, msg_failed",
        "    bl puts",
        "    adr x9, msg_params",
        "    bl puts",
        "    b halt",
        //
        // A synchronous exception from the partition: one frame of x0..x30 and the counter.
        "smc_entry:",
        "    stp x2, x3, [sp, #0x10]",
        "    stp x4, x5, [sp, #0x20]",
        "    stp x6, x7, [sp, #0x30]",
        "    stp x8, x9, [sp, #0x40]",
        "    stp x10, x11, [sp, #0x50]",
        "    stp x12, x13, [sp, #0x60]",
        "    stp x14, x15, [sp, #0x70]",
        "    stp x16, x17, [sp, #0x80]",
        "    stp x18, x19, [sp, #0x90]",
        "    stp x20, x21, [sp, #0xa0]",
        "    stp x22, x23, [sp, #0xb0]",
        "    stp x24, x25, [sp, #0xc0]",
        "    stp x26, x27, [sp, #0xd0]",
        "    stp x28, x29, [sp, #0xe0]",
        "    stp x30, x0, [sp, #0xf0]",
        "    mov_addr x4, {uart}",
        "    mrs x1, esr_el3",
        "    ubfx x1, x1, #26, #6",
        "    cmp x1, #0x17",
        "    b.ne unexpected",
        "    ldr w0, [sp]",
        // w1: the function id without its SMC64 bit.
        "    and w1, w0, #0xbfffffff",
        "    mov_addr w2, 0x8400006b",
        "    cmp w1, w2",
        "    b.eq msg_wait",
        "    mov_addr w2, 0x84000060",
        "    cmp w0, w2",
        "    b.eq aborted",
        "    mov_addr w2, 0x84000063",
        "    cmp w0, w2",
        "    b.eq version",
        "    mov_addr w2, 0x84000069",
        "    cmp w0, w2",
        "    b.eq id_get",
        "    mov_addr w2, 0x8400008a",
        "    cmp w1, w2",
        "    b.eq console_log",
        "    mov_addr w2, 0x84000066",
        "    cmp w1, w2",
        "    b.eq success",
        // FFA_SECONDARY_EP_REGISTER: taken, as Hafnium takes it at boot (the stand-in starts
        // no secondary context).
        "    mov_addr w2, 0x84000087",
        "    cmp w1, w2",
        "    b.eq success",
        // The rest of the FF-A range (0x84000060..0x840000ff, either width): NOT_SUPPORTED.
        "    and w3, w1, #0xffffff00",
        "    mov_addr w2, 0x84000000",
        "    cmp w3, w2",
        "    b.ne smccc_unknown",
        "    and w3, w1, #0xff",
        "    cmp w3, #0x60",
        "    b.lo smccc_unknown",
        "    adr x9, msg_refused",
        "    bl puts",
        "    ldr w10, [sp]",
        "    bl puthex",
        "    mov w7, #10",
        "    putc",
        "    mov x2, #0xffffffff",
        "    b ffa_error",
        "smccc_unknown:",
        "    mov x0, #-1",
        "    str x0, [sp]",
        "    b exit",
        "version:",
        "    mov_addr x0, 0x10002",
        "    mov x2, #0",
        "    b answer2",
        "id_get:",
        "    mov x2, #0x8001",
        "    b success2",
        "success:",
        "    mov x2, #0",
        "success2:",
        "    mov_addr x0, 0x84000061",
        "    b answer2",
        "invalid:",
        "    mov x2, #0xfffffffe",
        "ffa_error:",
        "    mov_addr x0, 0x84000060",
        // Answer x0 and x2; x1 and x3..x17 zero.
        "answer2:",
        "    stp x0, xzr, [sp]",
        "    stp x2, xzr, [sp, #0x10]",
        "    stp xzr, xzr, [sp, #0x20]",
        "    stp xzr, xzr, [sp, #0x30]",
        "    stp xzr, xzr, [sp, #0x40]",
        "    stp xzr, xzr, [sp, #0x50]",
        "    stp xzr, xzr, [sp, #0x60]",
        "    stp xzr, xzr, [sp, #0x70]",
        "    stp xzr, xzr, [sp, #0x80]",
        "exit:",
        "    ldr x1, [sp, #0xf8]",
        "    mov_addr x2, {params}",
        "    ldp x3, x5, [x2, #0x20]",
        "    add x5, x5, #1",
        "    sub x3, x3, x1",
        // EXIT_TAIL: from this read to the ERET, inclusive.
        "    mrs x0, cntpct_el0",
        "    add x3, x3, x0",
        "    stp x3, x5, [x2, #0x20]",
        "    ldp x0, x1, [sp]",
        "    ldp x2, x3, [sp, #0x10]",
        "    ldp x4, x5, [sp, #0x20]",
        "    ldp x6, x7, [sp, #0x30]",
        "    ldp x8, x9, [sp, #0x40]",
        "    ldp x10, x11, [sp, #0x50]",
        "    ldp x12, x13, [sp, #0x60]",
        "    ldp x14, x15, [sp, #0x70]",
        "    ldp x16, x17, [sp, #0x80]",
        "    ldp x18, x19, [sp, #0x90]",
        "    ldp x20, x21, [sp, #0xa0]",
        "    ldp x22, x23, [sp, #0xb0]",
        "    ldp x24, x25, [sp, #0xc0]",
        "    ldp x26, x27, [sp, #0xd0]",
        "    ldp x28, x29, [sp, #0xe0]",
        "    ldr x30, [sp, #0xf0]",
        "    add sp, sp, #0x100",
        "    eret",
        //
        // FFA_CONSOLE_LOG: w1 characters in x2.. (8 a register, at most 128) or, 32-bit, in
        // w2..w7 (4 a register, at most 24), first character in the lowest byte.
        "console_log:",
        "    ldr x1, [sp, #8]",
        "    cbz x1, invalid",
        "    mov x3, #24",
        "    tst w0, #0x40000000",
        "    mov x5, #128",
        "    csel x3, x5, x3, ne",
        "    cmp x1, x3",
        "    b.hi invalid",
        "    mov x5, #0",
        "1:  cmp x5, x1",
        "    b.hs success",
        "    mov x6, x5",
        "    tbnz w0, #30, 2f",
        "    lsr x6, x5, #2",
        "    and x3, x5, #3",
        "    orr x6, x3, x6, lsl #3",
        "2:  add x6, x6, #0x10",
        "    ldrb w7, [sp, x6]",
        "    putc",
        "    add x5, x5, #1",
        "    b 1b",
        //
        // The first FFA_MSG_WAIT: N = in - start - BOOT_TAIL - ENTRY_HEAD * (S + 1) - inside
        // - EXIT_TAIL * S, with S the SMCs answered before.
        "msg_wait:",
        "    ldr x1, [sp, #0xf8]",
        "    mov_addr x20, {params}",
        "    ldr x3, [x20, #0x18]",
        "    ldp x5, x6, [x20, #0x20]",
        "    sub x1, x1, x3",
        "    sub x1, x1, x5",
        "    mov x3, #({entry_head} + {exit_tail})",
        "    msub x1, x6, x3, x1",
        "    sub x1, x1, #({boot_tail} + {entry_head})",
        "    adr x9, msg_report",
        "    bl puts",
        "    mov x10, x1",
        "    bl putdec",
        "    adr x9, msg_smcs",
        "    bl puts",
        "    mov x10, x6",
        "    bl putdec",
        "    adr x9, msg_counter",
        "    bl puts",
        "    mrs x10, cntfrq_el0",
        "    bl putdec",
        "    adr x9, msg_hz",
        "    bl puts",
        "    mov x1, #0",
        "    b exit_qemu",
        //
        // FFA_ERROR from the partition: its start-up failed (it stops).
        "aborted:",
        "    adr x9, msg_failed",
        "    bl puts",
        "    adr x9, msg_aborted",
        "    bl puts",
        "    b halt",
        "unexpected:",
        "    mov_addr x4, {uart}",
        "    adr x9, msg_failed",
        "    bl puts",
        "    adr x9, msg_exception",
        "    bl puts",
        "    mrs x10, esr_el3",
        "    bl puthex",
        "    adr x9, msg_elr",
        "    bl puts",
        "    mrs x10, elr_el3",
        "    bl puthex",
        "    mov w7, #10",
        "    putc",
        "halt:",
        "    mov x1, #1",
        // Semihosting SYS_EXIT (x0 = 0x18, x1 = {ADP_Stopped_ApplicationExit, x1}): QEMU exits
        // with that status; without semihosting, or if it returns, wait for interrupts.
        "exit_qemu:",
        "    mov_addr x2, {params}",
        "    mov_addr x0, 0x20026",
        "    stp x0, x1, [x2, #0x30]",
        "    add x1, x2, #0x30",
        "    mov x0, #0x18",
        "    hlt #0xf000",
        "9:  wfi",
        "    b 9b",
        //
        // puts: the NUL-terminated string at x9. putdec, puthex: x10 in decimal, in hex.
        // All write through x4 and clobber x7..x16.
        "puts:",
        "    ldrb w7, [x9], #1",
        "    cbz w7, 3f",
        "    putc",
        "    b puts",
        "3:  ret",
        "putdec:",
        "    mov x12, sp",
        "    mov x13, #10",
        "4:  udiv x14, x10, x13",
        "    msub x15, x14, x13, x10",
        "    add w15, w15, #0x30",
        "    strb w15, [x12, #-1]!",
        "    mov x10, x14",
        "    cbnz x10, 4b",
        "    mov x16, sp",
        "5:  cmp x12, x16",
        "    b.hs 6f",
        "    ldrb w7, [x12], #1",
        "    putc",
        "    b 5b",
        "6:  ret",
        "puthex:",
        "    mov w7, #0x30",
        "    putc",
        "    mov w7, #0x78",
        "    putc",
        "    mov x12, #60",
        "7:  lsr x13, x10, x12",
        "    and x13, x13, #0xf",
        "    cmp x13, #10",
        "    add x14, x13, #0x30",
        "    add x15, x13, #0x57",
        "    csel x7, x14, x15, lo",
        "    putc",
        "    subs x12, x12, #4",
        "    b.pl 7b",
        "    ret",
        //
        concat!("msg_report: .asciz \"\\n", el3_standin::report!(), "\""),
        "msg_smcs: .asciz \" instructions, \"",
        "msg_counter: .asciz \" SMCs, counter \"",
        "msg_hz: .asciz \" Hz\\n\"",
        concat!("msg_failed: .asciz \"\\n", el3_standin::failure!(), "\""),
        "msg_params: .asciz \"bad parameters\\n\"",
        "msg_aborted: .asciz \"the partition answered FFA_ERROR: its start-up failed\\n\"",
        "msg_exception: .asciz \"exception ESR \"",
        "msg_elr: .asciz \" ELR \"",
        "msg_refused: .asciz \"el3-standin: NOT_SUPPORTED for \"",
        //
        // The vector table: only a synchronous exception from a lower EL in AArch64 (an SMC)
        // is expected.
        ".balign 0x800",
        "vectors:",
        ".rept 8",
        "    b unexpected",
        "    .balign 0x80",
        ".endr",
        // ENTRY_HEAD: the two instructions before the counter read.
        "    sub sp, sp, #0x100",
        "    stp x0, x1, [sp]",
        "    mrs x0, cntpct_el0",
        "    b smc_entry",
        "    .balign 0x80",
        ".rept 7",
        "    b unexpected",
        "    .balign 0x80",
        ".endr",
        uart = const UART,
        params = const PARAMS_ADDR,
        staging = const STAGING_ADDR,
        max_package = const MAX_PACKAGE,
        stack_top = const PARAMS_ADDR + 0x1000,
        boot_tail = const super::BOOT_TAIL,
        entry_head = const super::ENTRY_HEAD,
        exit_tail = const super::EXIT_TAIL,
    );
}
