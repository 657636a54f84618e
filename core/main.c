#include <config.h>
#include <stdio.h>
int
main (void)
{
  puts ("berthd");
  return 0;
}
