#!/bin/bash
# deploy.sh — the askproai deployment functions, called phase by phase by deckhand.
#
# deckhand sources this file and calls one function per phase, with DECKHAND_RELEASE,
# DECKHAND_RELEASE_PATH, DECKHAND_PREVIOUS_RELEASE, DECKHAND_DEPLOY_PATH, DECKHAND_NODE,
# DECKHAND_HOST, DECKHAND_ENV and DECKHAND_APP set. Run by hand, it deploys in one go.
set -euo pipefail

REPO="${REPO:-git@github.com:askproai/askproai.git}"

backup_database() {
    mkdir -p ~/backups
    mysqldump --single-transaction askproai | gzip > ~/backups/"$DECKHAND_RELEASE".sql.gz
}

create_deployment_tag() {
    git tag -f "deploy-$DECKHAND_ENV-$DECKHAND_RELEASE"
}

pull_latest_code() {
    git archive --remote="$REPO" "$DECKHAND_RELEASE" | tar -x -C "$DECKHAND_RELEASE_PATH"
}

install_dependencies() {
    cd "$DECKHAND_RELEASE_PATH"
    composer install --no-dev --prefer-dist --no-interaction --optimize-autoloader
    npm ci
}

run_migrations() {
    cd "$DECKHAND_RELEASE_PATH"
    php artisan migrate --force
}

build_assets() {
    cd "$DECKHAND_RELEASE_PATH"
    npm run build
}

clear_caches() {
    cd "$DECKHAND_RELEASE_PATH"
    php artisan config:cache
    php artisan route:cache
    php artisan view:cache
}

restart_services() {
    sudo systemctl reload php8.3-fpm
    sudo supervisorctl restart 'askproai-worker:*'
}

run_health_checks() {
    curl -fsS --max-time 4 http://127.0.0.1/api/health
}

notify_team() {
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "{\"text\":\"askproai $DECKHAND_RELEASE is live on $DECKHAND_ENV\"}" "${SLACK_WEBHOOK_URL:?}"
}

rollback_on_failure() {
    ln -sfn "releases/$DECKHAND_PREVIOUS_RELEASE" "$DECKHAND_DEPLOY_PATH/.current.tmp"
    mv -fT "$DECKHAND_DEPLOY_PATH/.current.tmp" "$DECKHAND_DEPLOY_PATH/current"
}

# Only when run by hand: the whole deployment in order.
if [ -z "${DECKHAND_FUNCTION:-}" ] && [ "${BASH_SOURCE[0]}" = "$0" ]; then
    backup_database
    create_deployment_tag
    pull_latest_code
    install_dependencies
    run_migrations
    build_assets
    clear_caches
    restart_services
    run_health_checks
    notify_team
fi
