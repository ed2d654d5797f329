#ifndef RINGATTN_CBLAS_HPP
#define RINGATTN_CBLAS_HPP

// The CBLAS header of the provider chosen at configure time
// (RingAttn_BLAS_PROVIDER): MKL's own, or the system's cblas.h. One place,
// so that the forward and backward host paths never see both.

#include <RingAttn_Config.hpp>

#ifdef RINGATTN_ENABLE_BLAS
#ifdef RINGATTN_HAVE_MKL
#include <mkl_cblas.h>
#else
#include <cblas.h>
#endif
#endif

#endif
