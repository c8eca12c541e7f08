#!/bin/sh
# certbot deploy hook: copy the renewed certificate where hearth reads it and reload hearth.
# Install: certbot renew --deploy-hook /usr/share/hearth/contrib/certbot-deploy-hook.sh
# (or place it in /etc/letsencrypt/renewal-hooks/deploy/). Adjust DOMAIN.
set -eu
DOMAIN=${DOMAIN:-example.com}
install -d -m 0750 -o root -g hearth /etc/hearth/tls
install -m 0640 -o root -g hearth "/etc/letsencrypt/live/$DOMAIN/fullchain.pem" /etc/hearth/tls/fullchain.pem
install -m 0640 -o root -g hearth "/etc/letsencrypt/live/$DOMAIN/privkey.pem" /etc/hearth/tls/privkey.pem
systemctl reload hearth
