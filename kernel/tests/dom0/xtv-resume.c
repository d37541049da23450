/*
 * xtv-resume DOMID: resume a suspended domain in place, as the end of `xl save -c` does
 * (xc_domain_resume with fast=1: the guest's suspend hypercall returns 1, "cancelled"), but
 * without libxl's save first writing "suspend" into control/shutdown. The caller sends
 * XS_RESUME afterwards (xtv-xs `resume DOMID`), as libxl does. Static, for the lab's dom0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <xenctrl.h>
#include <xenguest.h>

int main(int argc, char **argv)
{
    char *end;
    long domid;
    xc_interface *xch;
    int rc;

    if (argc != 2 || (domid = strtol(argv[1], &end, 10)) <= 0 || *end) {
        fprintf(stderr, "usage: xtv-resume DOMID\n");
        return 2;
    }
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) {
        perror("xtv-resume: xc_interface_open");
        return 2;
    }
    rc = xc_domain_resume(xch, (uint32_t)domid, 1);
    xc_interface_close(xch);
    if (rc) {
        fprintf(stderr, "xtv-resume: xc_domain_resume(%ld, fast) failed: %d\n", domid, rc);
        return 1;
    }
    return 0;
}
