/* mmws.h — umbrella header: includes every public header of mmws. */
#ifndef MMWS_H
#define MMWS_H

#include <mmws/common.h>
#include <mmws/codec.h>
#include <mmws/loop.h>
#include <mmws/conn.h>
#include <mmws/ring.h>
#include <mmws/pool.h>

#endif /* MMWS_H */
